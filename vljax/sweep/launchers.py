"""The commands that start a sweep's runs, one launcher each: local, multiprocess, slurm, tpu,
xpk.

Every command is an argv list; `shlex.join` prints it exactly as a shell would run it
(paths with spaces and overrides holding JSON stay one argument each). The cluster
launchers are the scripts in launch/, so a sweep and a single hand-started run go through
the same lines.
"""

import hashlib
import os
import re
import shlex
import sys
from dataclasses import dataclass

import vljax
from vljax.errors import ConfigError
from vljax.sweep.spec import Run
from vljax.sweep.status import LOG

LAUNCHERS = ("local", "multiprocess", "slurm", "tpu", "xpk")
# The launchers whose runs see the repository and ROOT at their own paths (a TPU VM's home, a
# GKE pod's image): the paths stay as given, not made absolute here.
PATHS_AS_GIVEN = ("tpu", "xpk")
# LaunchOptions fields that only some launchers take (the others refuse them).
LAUNCHER_OPTIONS = {
    "tpu": ("tpu", "zone", "tpu_type", "tpu_delete"),
    "xpk": ("cluster", "project", "zone", "tpu_type", "num_slices", "docker_image"),
}
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
    cluster: str | None = None  # xpk: the GKE cluster (`xpk cluster create`)
    project: str | None = None  # xpk: its Google Cloud project (default: gcloud's)
    num_slices: int | None = None  # xpk: TPU slices per run (mesh.dcn_data follows)
    docker_image: str | None = None  # xpk: an image with vljax installed (default: layered)


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


def xpk_workload_name(run: Run) -> str:
    """The run's XPK workload: its name in the letters XPK takes (a-z, 0-9, '-', a letter
    first, 40 at most), then a hash of its workdir, so runs of other sweeps on the same
    cluster do not collide."""
    slug = re.sub(r"[^a-z0-9]+", "-", run.name.lower()).strip("-")
    if not slug[:1].isalpha():
        slug = "run-" + slug
    digest = hashlib.sha1(run.workdir.encode()).hexdigest()[:6]
    return f"{slug[:32].rstrip('-')}-{digest}"


def xpk_run_command(run: Run, options: LaunchOptions) -> list[str]:
    """launch/xpk.sh: the run as an XPK workload on its TPU slices, waited for (the exit code
    is the workload's success), its output in Cloud Logging (`kubectl logs`)."""
    if not (options.cluster and options.tpu_type):
        raise ConfigError(
            "--launcher xpk needs --cluster NAME (the GKE cluster) and --tpu-type TYPE "
            "(e.g. v5p-256)"
        )
    cmd = ["bash", os.path.join(launch_dir(), "xpk.sh"), "--cluster", options.cluster]
    for flag, value in (("--project", options.project), ("--zone", options.zone)):
        cmd += [flag, value] if value else []
    cmd += ["create", xpk_workload_name(run), "--tpu-type", options.tpu_type]
    if options.num_slices:
        cmd += ["--num-slices", str(options.num_slices)]
    if options.docker_image:
        cmd += ["--docker-image", options.docker_image]
    return cmd + ["--wait", "--", *run.train_args()]


def run_command(run: Run, options: LaunchOptions) -> list[str]:
    """The command that runs one run, for the launchers that start runs one by one."""
    if options.launcher == "local":
        return local_command(run)
    if options.launcher == "multiprocess":
        return multiprocess_command(run, options)
    if options.launcher == "tpu":
        return tpu_run_command(run, options)
    if options.launcher == "xpk":
        return xpk_run_command(run, options)
    raise ValueError(f"launcher {options.launcher!r} does not start runs one by one")
