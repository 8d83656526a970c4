"""`vljax compile`: a config's train step compiled ahead of time for N devices, from abstract
arrays (vljax/train/aot.py), with per-device bytes, FLOPs and collectives; docs/scaling.md.

    vljax compile --config F[:arg] [--config.k=v ...] --devices N [--json OUT] [--no-compile]
    vljax compile --config F --topology v5e:16x16 [--json OUT]   # libtpu installed, no TPU needed
    vljax compile --config F --topology attached                 # this machine's accelerators

By default the N devices are fake CPU devices of a process of its own (`python -m vljax.cli
compile` with XLA_FLAGS=--xla_force_host_platform_device_count=N): jax fixes its CPU device
count once per process, when its backends start.
"""

import argparse
import json
import os
import re
import subprocess
import sys

import jax
from jax.experimental import topologies
from rich.console import Console
from rich.table import Table

from vljax import sharding as shd
from vljax.atomic_write import write_text
from vljax.config import build_config, parse_overrides
from vljax.errors import ConfigError
from vljax.train.aot import COLLECTIVES, CompileReport, compile_report

# Fake CPU devices only compile, never run: XLA's CPU backend then skips LLVM's optimisation
# passes (the B/16 step on 64 devices: 23 s instead of 40 here; buffer assignment, hence every
# byte count, is the same).
CPU_COMPILE_FLAGS = "--xla_backend_optimization_level=0"
# Set in the process `vljax compile` starts for N fake CPU devices (the one that compiles).
COMPILE_PROCESS_ENV = "VLJAX_COMPILE_PROCESS"
_DEVICE_COUNT_FLAG = re.compile(r"--xla_force_host_platform_device_count=\S*")


def fake_cpu_devices(n: int):
    """This process's `n` fake CPU devices; refuses when jax started with another count."""
    devices = jax.devices("cpu")
    if len(devices) != n:
        raise ConfigError(
            f"jax started with {len(devices)} CPU devices, not {n}: run `vljax compile` as a "
            f"process of its own, or set XLA_FLAGS=--xla_force_host_platform_device_count={n} "
            "before jax is imported"
        )
    return devices


def run_in_compile_process(argv, n: int) -> int:
    """Runs `vljax compile argv` in a process of its own with `n` fake CPU devices: jax fixes
    its device count when its backends start, once per process, so neither this process's
    count (a caller may use jax already, e.g. a test) nor its future one is touched."""
    flags = _DEVICE_COUNT_FLAG.sub("", os.environ.get("XLA_FLAGS", ""))
    if CPU_COMPILE_FLAGS not in flags:
        flags += " " + CPU_COMPILE_FLAGS
    env = {
        **os.environ,
        "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={n}".strip(),
        "JAX_PLATFORMS": "cpu",  # fake devices need no accelerator (nor to lock one)
        COMPILE_PROCESS_ENV: "1",
    }
    command = [sys.executable, "-m", "vljax.cli", "compile", *argv]
    return subprocess.run(command, env=env).returncode


def topology_devices(name: str):
    """Devices to compile for: 'attached' = this machine's devices of jax's default backend
    (TPU, GPU); else a TPU topology name (e.g. v4:2x2x2, v5e:8x8), compile-only devices that
    need libtpu but no TPU."""
    if name == "attached":
        return jax.devices()
    try:
        return topologies.get_topology_desc(name, "tpu").devices
    except Exception as e:  # no libtpu, or a name libtpu does not know: both raise here
        raise ConfigError(
            f"--topology {name!r}: {e}. A TPU topology needs libtpu (`pip install 'jax[tpu]'`) "
            "and a name like v4:2x2x2 or v5e:8x8; for other devices use --devices N (fake CPU "
            "devices) or --topology attached"
        ) from e


def _mib(n):
    return "-" if n is None else f"{n / 2**20:,.1f}"


def print_report(report: CompileReport, title: str):
    table = Table(title=title, show_header=True)
    table.add_column("per device")
    table.add_column("MiB", justify="right")
    rows = [
        ("parameters", report.param_bytes_per_device),
        ("optimizer state", report.opt_state_bytes_per_device),
        ("arguments (state + batch)", report.argument_bytes_per_device),
        ("outputs", report.output_bytes_per_device),
        ("  of which in donated arguments", report.alias_bytes_per_device),
        ("temporaries", report.temp_bytes_per_device),
        ("total (args + outs - donated + temps)", report.total_bytes_per_device),
    ]
    for name, value in rows:
        table.add_row(name, _mib(value))
    console = Console()
    console.print(table)
    mesh = " x ".join(f"{axis} {size}" for axis, size in report.mesh.items())
    console.print(
        f"{report.devices} x {report.device_kind} devices, mesh {mesh}, batch "
        f"{report.batch_size}, {report.params / 1e6:,.1f}M params"
    )
    if report.flops_per_step is None:
        console.print("not compiled (--no-compile): shardings only")
        return
    collectives = ", ".join(f"{report.collectives[kind]} {kind}" for kind in COLLECTIVES)
    console.print(f"TFLOPs per step, all devices (matmuls): {report.flops_per_step / 1e12:,.2f}")
    console.print(f"collectives in the compiled HLO: {collectives}")
    console.print(f"built in {report.build_s:.1f} s, compiled in {report.compile_s:.1f} s")


def cli(argv) -> int:
    overrides, rest = parse_overrides(argv)
    parser = argparse.ArgumentParser(
        prog="vljax compile",
        description="Compile a config's train step ahead of time for N devices and report "
        "per-device bytes, FLOPs and collectives (docs/scaling.md).",
    )
    parser.add_argument("--config", required=True, help="configs/X.py[:arg] or a config.json")
    parser.add_argument("--devices", type=int, default=None, help="N fake CPU devices")
    parser.add_argument(
        "--topology",
        default=None,
        help="compile for a TPU topology instead (e.g. v5e:8x8; needs libtpu, not a TPU), or "
        "'attached' for this machine's accelerators",
    )
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the report here")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="only shard: parameter and optimizer bytes per device in seconds (temporaries, "
        "arguments, FLOPs and collectives need the compile)",
    )
    args = parser.parse_args(rest)
    config = build_config(args.config, overrides)  # unknown keys are refused before jax starts
    if args.devices is not None and args.devices < 1:
        raise ConfigError(f"--devices {args.devices}: give a device count of at least 1")
    if args.topology is None:
        if args.devices is None:
            raise ConfigError("give --devices N (fake CPU devices) or --topology NAME")
        if not os.environ.get(COMPILE_PROCESS_ENV):
            return run_in_compile_process(argv, args.devices)
        devices = fake_cpu_devices(args.devices)
    else:
        devices = topology_devices(args.topology)
        if args.devices is not None and args.devices != len(devices):
            raise ConfigError(
                f"--topology {args.topology} has {len(devices)} devices, not --devices "
                f"{args.devices}; drop --devices or pick a topology of that size"
            )
    try:
        shd.make_mesh(config.mesh, devices, stand_in_granules=True)
    except ConfigError as e:
        raise ConfigError(f"{e}, or compile for another --devices / --topology") from e
    report = compile_report(config, devices, compile=not args.no_compile)
    print_report(report, f"vljax compile {args.config}")
    if args.json:
        write_text(args.json, json.dumps(report.as_json(), indent=2) + "\n")
    return 0
