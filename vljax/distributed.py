"""Joining a multi-process (multi-host) run: JAX's multi-controller runtime, `jax.distributed`.

Where the coordinator comes from, first match wins:

1. `vljax train --coordinator-address HOST:PORT --num-processes N --process-id I`;
2. the launchers' environment (launch/): `VLJAX_COORDINATOR`, `VLJAX_NUM_PROCESSES`,
   `VLJAX_PROCESS_ID` (a flag given on the command line wins over its variable);
3. a cluster that `jax.distributed.initialize()` detects by itself: a SLURM step of more
   than one task (`srun`), a Cloud TPU VM (libtpu and a TPU device present) or a TPU
   multi-slice / GKE job (`MEGASCALE_COORDINATOR_ADDRESS`, `TPU_WORKER_HOSTNAMES`);
4. otherwise one process (`--num-processes 1` forces it, skipping the detection).

`VLJAX_CPU_COLLECTIVES=gloo` (set by launch/multiprocess.py --cpu-devices) selects gloo for
collectives across processes of fake CPU devices.
"""

import dataclasses
import glob
import importlib.util
import os

import jax

from vljax.errors import ConfigError

ENV_COORDINATOR = "VLJAX_COORDINATOR"
ENV_NUM_PROCESSES = "VLJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "VLJAX_PROCESS_ID"
ENV_CPU_COLLECTIVES = "VLJAX_CPU_COLLECTIVES"
# The variables jax's SLURM detection reads (jax/_src/clusters/slurm_cluster.py); a step run
# by `srun` has them all, the batch script itself lacks SLURM_STEP_NODELIST.
SLURM_VARS = (
    "SLURM_JOB_ID",
    "SLURM_STEP_NODELIST",
    "SLURM_NTASKS",
    "SLURM_PROCID",
    "SLURM_LOCALID",
)


@dataclasses.dataclass(frozen=True)
class Coordinator:
    """An explicit multi-process job: where process 0 listens, how many, which one this is."""

    address: str | None
    num_processes: int | None
    process_id: int | None


def _int(value, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{what} = {value!r} must be an integer") from None


def explicit_coordinator(address=None, num_processes=None, process_id=None, environ=None):
    """The flags, each falling back to its VLJAX_* variable."""
    env = os.environ if environ is None else environ
    return Coordinator(
        address=address or env.get(ENV_COORDINATOR) or None,
        num_processes=(
            num_processes
            if num_processes is not None
            else _int(env.get(ENV_NUM_PROCESSES), ENV_NUM_PROCESSES)
        ),
        process_id=(
            process_id if process_id is not None else _int(env.get(ENV_PROCESS_ID), ENV_PROCESS_ID)
        ),
    )


def detected_cluster(environ=None) -> str | None:
    """'slurm' or 'tpu' when `jax.distributed.initialize()` can configure itself here."""
    env = os.environ if environ is None else environ
    if all(v in env for v in SLURM_VARS) and (_int(env["SLURM_NTASKS"], "SLURM_NTASKS") or 1) > 1:
        return "slurm"
    if env.get("MEGASCALE_COORDINATOR_ADDRESS") or "," in env.get("TPU_WORKER_HOSTNAMES", ""):
        return "tpu"
    tpu_device = glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*")
    if tpu_device and importlib.util.find_spec("libtpu") is not None:
        return "tpu"
    return None


def check_coordinator(c: Coordinator):
    """Refuses a partial or inconsistent explicit job, naming the missing flag."""
    flags = {
        "--coordinator-address": c.address,
        "--num-processes": c.num_processes,
        "--process-id": c.process_id,
    }
    given = {k for k, v in flags.items() if v is not None}
    if c.num_processes is not None and c.num_processes < 1:
        raise ConfigError(f"--num-processes = {c.num_processes} must be at least 1")
    if c.num_processes == 1 and c.address is None:
        return  # one process, said explicitly
    if given and len(given) < 3:
        missing = ", ".join(sorted(set(flags) - given))
        raise ConfigError(
            f"a multi-process run needs all of --coordinator-address HOST:PORT, "
            f"--num-processes N and --process-id I (or {ENV_COORDINATOR}, "
            f"{ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}); missing {missing}"
        )
    if given and not 0 <= c.process_id < c.num_processes:
        raise ConfigError(
            f"--process-id = {c.process_id} must be in [0, {c.num_processes}) "
            f"(--num-processes {c.num_processes})"
        )
    if c.address is not None and ":" not in c.address:
        raise ConfigError(
            f"--coordinator-address = {c.address!r} needs a port: HOST:PORT, e.g. "
            f"{c.address}:8476 (the same on every process)"
        )


def init_distributed(address=None, num_processes=None, process_id=None) -> str:
    """Joins the job (see the module docstring); returns how: 'explicit', 'slurm', 'tpu'
    or 'single'. Must run before anything touches a JAX device."""
    c = explicit_coordinator(address, num_processes, process_id)
    check_coordinator(c)
    if os.environ.get(ENV_CPU_COLLECTIVES):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if c.address is not None:
        jax.distributed.initialize(
            coordinator_address=c.address,
            num_processes=c.num_processes,
            process_id=c.process_id,
        )
        return "explicit"
    if c.num_processes == 1:
        return "single"
    cluster = detected_cluster()
    if cluster is not None:
        jax.distributed.initialize()
        return cluster
    return "single"
