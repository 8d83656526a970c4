#!/usr/bin/env python3
"""Runs K local processes of `vljax train` that join one jax.distributed job.

    python launch/multiprocess.py -n 2 --cpu-devices 4 -- --config configs/demo.py --workdir runs/mp
    python launch/multiprocess.py -n 2 --dry-run -- --config configs/demo.py --workdir runs/mp

Each process gets VLJAX_COORDINATOR=127.0.0.1:PORT, VLJAX_NUM_PROCESSES=K and
VLJAX_PROCESS_ID=i; `vljax train` reads them and calls jax.distributed.initialize. This is
how multi-host code paths (per-process data shards, process-0-only writes) are exercised on
one machine. If one process fails, the others are stopped and its exit code is returned.
"""

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_device_flags(cpu_devices, xla_flags=""):
    """`xla_flags` with its fake CPU device count (if any) replaced by `cpu_devices`."""
    kept = [f for f in xla_flags.split() if not f.startswith(DEVICE_COUNT_FLAG)]
    return " ".join([*kept, f"{DEVICE_COUNT_FLAG}={cpu_devices}"])


def process_envs(num_processes, port, cpu_devices=None, gpu_per_process=False):
    """The environment variables that process i adds to its parent's environment."""
    envs = []
    for i in range(num_processes):
        env = {
            "VLJAX_COORDINATOR": f"127.0.0.1:{port}",
            "VLJAX_NUM_PROCESSES": str(num_processes),
            "VLJAX_PROCESS_ID": str(i),
        }
        if cpu_devices:
            # Fake CPU devices per process (the parent's other XLA flags kept); cross-process
            # CPU collectives need gloo.
            env["JAX_PLATFORMS"] = "cpu"
            env["XLA_FLAGS"] = cpu_device_flags(cpu_devices, os.environ.get("XLA_FLAGS", ""))
            env["VLJAX_CPU_COLLECTIVES"] = "gloo"
        if gpu_per_process:
            env["CUDA_VISIBLE_DEVICES"] = str(i)
        envs.append(env)
    return envs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--num-processes", type=int, default=2)
    parser.add_argument("--port", type=int, default=None, help="coordinator port (default: free)")
    parser.add_argument("--cpu-devices", type=int, default=None, help="fake CPU devices each")
    parser.add_argument("--gpu-per-process", action="store_true", help="process i sees GPU i")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then `vljax train` args")
    args = parser.parse_args(argv)
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    if args.num_processes < 1:
        parser.error("--num-processes must be >= 1")

    port = args.port or free_port()
    cmd = [sys.executable, "-m", "vljax.cli", "train", *train_args]
    envs = process_envs(args.num_processes, port, args.cpu_devices, args.gpu_per_process)
    if args.dry_run:
        for env in envs:
            print(" ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(cmd))
        return 0

    procs = [subprocess.Popen(cmd, env={**os.environ, **env}) for env in envs]
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [c for c in codes if c not in (None, 0)]
            if failed or all(c == 0 for c in codes):
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        failed = [130]
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    if failed:
        print(f"multiprocess: a process exited with {failed[0]}; stopped the rest", file=sys.stderr)
        return failed[0] if failed[0] > 0 else 128 - failed[0]  # -N: killed by signal N
    return 0


if __name__ == "__main__":
    sys.exit(main())
