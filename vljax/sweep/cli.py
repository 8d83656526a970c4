"""`vljax sweep`: run a sweep file's runs, or summarise a finished sweep.

vljax sweep --config configs/ablations/loss.py[:arg] --workdir-root ROOT
            [--launcher local|multiprocess|slurm|tpu|xpk] [--dry-run] [--parallel K]
            [--only NAME...]
vljax sweep summarize ROOT

Each run trains in ROOT/NAME (its output in ROOT/NAME/log.txt); complete runs are skipped and
interrupted ones resume, so rerunning the same command finishes a sweep. Exit code 8
(EXIT_SWEEP_RUN_FAILED) when a run failed (the others still ran; each is listed with its log).
"""

import argparse
import os
import sys

from vljax.errors import ConfigError
from vljax.sweep import execute, launchers
from vljax.sweep.spec import load_sweep
from vljax.sweep.summary import summarize


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vljax sweep",
        description=__doc__.split("\n\n")[0],
        epilog="`vljax sweep summarize ROOT` writes ROOT/summary.md, summary.csv and plots/.",
    )
    p.add_argument("--config", required=True, help="sweep file configs/ablations/X.py[:arg]")
    p.add_argument("--workdir-root", required=True, help="each run trains in ROOT/NAME")
    p.add_argument("--launcher", default="local", choices=launchers.LAUNCHERS)
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument(
        "--parallel",
        type=_positive,
        default=1,
        help="runs at once (local, multiprocess, slurm, xpk)",
    )
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these runs")
    mp = p.add_argument_group("multiprocess launcher")
    mp.add_argument("--processes", type=_positive, default=2, help="processes per run")
    mp.add_argument("--cpu-devices", type=_positive, default=None, help="fake CPU devices each")
    tpu = p.add_argument_group("tpu launcher (launch/tpu_pod.sh)")
    tpu.add_argument("--tpu", help="TPU VM (pod slice) name")
    tpu.add_argument("--zone", help="its zone, e.g. us-central2-b (xpk: the cluster's)")
    tpu.add_argument(
        "--tpu-type", help="create it with this accelerator type if absent (xpk: the slice type)"
    )
    tpu.add_argument("--tpu-delete", action="store_true", help="delete it after the sweep")
    xpk = p.add_argument_group("xpk launcher (launch/xpk.sh; also --zone, --tpu-type)")
    xpk.add_argument("--cluster", help="the GKE cluster XPK created")
    xpk.add_argument("--project", help="its Google Cloud project (default: gcloud's)")
    xpk.add_argument("--num-slices", type=_positive, help="TPU slices per run (sets mesh.dcn_data)")
    xpk.add_argument(
        "--docker-image", help="an image with vljax and jax[tpu] (default: layer this checkout)"
    )
    return p


def cli(argv) -> int:
    if argv[:1] == ["summarize"]:
        p = argparse.ArgumentParser(prog="vljax sweep summarize")
        p.add_argument("root", help="the --workdir-root of a sweep")
        args = p.parse_args(argv[1:])
        path = summarize(args.root)
        print(f"wrote {path}, summary.csv and plots/")
        return 0
    args = parser().parse_args(argv)
    allowed = launchers.LAUNCHER_OPTIONS.get(args.launcher, ())
    options_of = launchers.LAUNCHER_OPTIONS.items()
    stray = sorted({n for _, names in options_of for n in names if getattr(args, n)} - set(allowed))
    if stray:
        flag = lambda name: "--" + name.replace("_", "-")
        takes = "; ".join(f"{k} takes {', '.join(map(flag, names))}" for k, names in options_of)
        raise ConfigError(
            f"{', '.join(map(flag, stray))}: not options of --launcher {args.launcher} ({takes})"
        )
    options = launchers.LaunchOptions(
        launcher=args.launcher,
        parallel=args.parallel,
        processes=args.processes,
        cpu_devices=args.cpu_devices,
        tpu=args.tpu,
        zone=args.zone,
        tpu_type=args.tpu_type,
        tpu_delete=args.tpu_delete,
        cluster=args.cluster,
        project=args.project,
        num_slices=args.num_slices,
        docker_image=args.docker_image,
    )
    # TPU workers and GKE pods see the repository at their own path and ROOT on their shared
    # mount: both stay as given. Elsewhere runs may start in another directory (sbatch
    # --chdir): absolute.
    as_given = args.launcher in launchers.PATHS_AS_GIVEN
    root = args.workdir_root if as_given else os.path.abspath(args.workdir_root)
    runs = execute.select(load_sweep(args.config, root, absolute=not as_given), args.only)
    plan = execute.plan_runs(runs)
    return execute.run_sweep(plan, root, options, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
