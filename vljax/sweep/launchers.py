"""The commands that start a sweep's runs, one launcher each: local, multiprocess, slurm, tpu.

Every command is an argv list; `shlex.join` prints it exactly as a shell would run it
(paths with spaces and overrides holding JSON stay one argument each). The cluster
launchers are the scripts in launch/, so a sweep and a single hand-started run go through
the same lines.
"""

import os
import shlex
import sys
from dataclasses import dataclass

import vljax
from vljax.errors import ConfigError
from vljax.sweep.spec import Run
from vljax.sweep.status import LOG

LAUNCHERS = ("local", "multiprocess", "slurm", "tpu")
SLURM_TASKS = "slurm_tasks.txt"  # ROOT/...: line i is array task i's log path and command


@dataclass(frozen=True)
class LaunchOptions:
    launcher: str = "local"
    parallel: int = 1  # runs at once: local and multiprocess processes, SLURM array tasks
    processes: int = 2  # multiprocess: processes per run
    cpu_devices: int | None = None  # multiprocess: fake CPU devices per process
    tpu: str | None = None  # tpu: the TPU VM (pod slice) name
    zone: str | None = None
    tpu_type: str | None = None  # tpu: create the TPU VM with this accelerator type if absent
    tpu_delete: bool = False  # tpu: delete the TPU VM after the sweep


def launch_dir() -> str:
    """launch/ of the checkout vljax runs from (installed with `pip install -e .`)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(vljax.__file__))), "launch")
    if not os.path.isdir(path):
        raise ConfigError(
            f"the multiprocess, slurm and tpu launchers need launch/ beside the vljax package "
            f"({path} is missing); install vljax from a clone with `pip install -e .`"
        )
    return path


def log_path(run: Run) -> str:
    return os.path.join(run.workdir, LOG)


def local_command(run: Run) -> list[str]:
    return [sys.executable, "-m", "vljax.cli", "train", *run.train_args()]


def multiprocess_command(run: Run, options: LaunchOptions) -> list[str]:
    cmd = [sys.executable, os.path.join(launch_dir(), "multiprocess.py")]
    cmd += ["-n", str(options.processes)]
    if options.cpu_devices:
        cmd += ["--cpu-devices", str(options.cpu_devices)]
    return cmd + ["--", *run.train_args()]


def slurm_task_line(run: Run) -> str:
    """Array task i's line of SLURM_TASKS, read by launch/slurm.sbatch: its log, then the
    launch/slurm.sh command that runs it on the job's nodes."""
    return shlex.join([log_path(run), os.path.join(launch_dir(), "slurm.sh"), *run.train_args()])


def slurm_submit_command(root: str, num_tasks: int, options: LaunchOptions) -> list[str]:
    """One sbatch job array, at most `parallel` tasks at once; each task a multi-node job."""
    array = f"0-{num_tasks - 1}" + (f"%{options.parallel}" if options.parallel else "")
    repo = os.path.dirname(launch_dir())
    return [
        "sbatch",
        f"--array={array}",
        "--job-name=vljax-sweep",
        f"--output={os.path.join(root, 'slurm-%A_%a.out')}",
        f"--chdir={repo}",
        os.path.join(launch_dir(), "slurm.sbatch"),
        os.path.join(root, SLURM_TASKS),
    ]


def _tpu_script(options: LaunchOptions) -> str:
    if not (options.tpu and options.zone):
        raise ConfigError("--launcher tpu needs --tpu NAME and --zone ZONE (e.g. us-central2-b)")
    return os.path.join(launch_dir(), "tpu_pod.sh")


def tpu_setup_command(options: LaunchOptions) -> list[str]:
    """Creates the pod slice if asked (reused when it exists), copies this checkout to every
    worker and installs it."""
    cmd = ["bash", _tpu_script(options)]
    if options.tpu_type:
        cmd += ["--create", options.tpu_type]
    return cmd + ["--copy", "--install", options.tpu, options.zone]


def tpu_run_command(run: Run, options: LaunchOptions) -> list[str]:
    """The run on --worker=all, its output streamed back through ssh."""
    return ["bash", _tpu_script(options), options.tpu, options.zone, "--", *run.train_args()]


def tpu_delete_command(options: LaunchOptions) -> list[str]:
    return ["bash", _tpu_script(options), "--delete", options.tpu, options.zone]


def run_command(run: Run, options: LaunchOptions) -> list[str]:
    """The command that runs one run, for the launchers that start runs one by one."""
    if options.launcher == "local":
        return local_command(run)
    if options.launcher == "multiprocess":
        return multiprocess_command(run, options)
    if options.launcher == "tpu":
        return tpu_run_command(run, options)
    raise ValueError(f"launcher {options.launcher!r} does not start runs one by one")
