"""The demo's train step with the system's malloc and with vljax's glibc malloc settings
(vljax/host_malloc.py): step time and minor page faults per step, alternating runs.

    python benchmarks/host_malloc.py [--config configs/demo.py] [--repeats 3] [--write]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.train_step import machine_name  # noqa: E402
from vljax.host_malloc import OPT_OUT  # noqa: E402

FIELD = re.compile(r"^\s*(\w+): (\S+)$")


def train_step_row(config, system_malloc: bool) -> dict:
    """One `benchmarks/train_step.py` process; its printed fields."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env[OPT_OUT] = "1" if system_malloc else "0"
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "train_step.py"), "--config", config],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {m[1]: m[2] for line in out.splitlines() if (m := FIELD.match(line))}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/demo.py")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="record in docs/benchmarks.md")
    args = parser.parse_args(argv)

    runs = {True: [], False: []}
    for _ in range(args.repeats):  # alternating, so a busy spell hits both settings alike
        for system in (True, False):
            runs[system].append(train_step_row(args.config, system))
    rows = []
    for system, name in ((True, "system"), (False, "vljax tunables")):
        rows.append({
            "config": args.config,
            "machine": machine_name(),
            "malloc": name,
            "runs": args.repeats,
            "step_ms_median": statistics.median(float(r["step_ms"]) for r in runs[system]),
            "step_ms_all": " / ".join(r["step_ms"] for r in runs[system]),
            "page_faults_per_step": statistics.median(
                float(r["page_faults_per_step"]) for r in runs[system]
            ),
            "gflops_per_step": runs[system][0]["gflops_per_step"],
        })  # fmt: skip
        print("  ".join(f"{k} {v}" for k, v in rows[-1].items()))
    if args.write:
        from benchmarks.report import upsert_row

        note = (
            "`python benchmarks/host_malloc.py --write`: `benchmarks/train_step.py` on the demo "
            "config in separate processes, alternating the system's malloc "
            f"({OPT_OUT}=1) and vljax's glibc settings (vljax/host_malloc.py); median step "
            "time over the runs (each a median of 10 steps) and minor page faults per step."
        )
        for row in rows:
            upsert_row("Host malloc", row, key=("config", "machine", "malloc"), note=note)


if __name__ == "__main__":
    main()
