"""Test-suite wall time and its slowest tests: runs `pytest --durations=0` in a subprocess.

    python benchmarks/test_suite.py [--slowest 30] [--write] [--write-file-seconds]

`--write-file-seconds` records each test file's seconds (its tests' setup, call and teardown)
in tests/file_seconds.json, the order in which tests/conftest.py hands files to the workers.

Budget: `make test` within 10 minutes on the slower 2-core CPU kind (AMD Zen 3 without
AVX-512), including ruff; the suite's time is dominated by XLA compiles, not by running.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.train_step import machine_name  # noqa: E402
from tests.file_order import FILE_SECONDS  # noqa: E402

DURATION = re.compile(r"^\s*([\d.]+)s (call|setup|teardown)\s+(\S+)")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--slowest", type=int, default=30)
    parser.add_argument("--write", action="store_true", help="record in docs/benchmarks.md")
    parser.add_argument(
        "--write-file-seconds",
        action="store_true",
        help="record each test file's seconds in tests/file_seconds.json (the workers' order)",
    )
    args = parser.parse_args(argv)

    # As `make test` runs it (Makefile): the malloc settings, 2 workers, whole files each.
    pytest = [sys.executable, "-m", "vljax.host_malloc", sys.executable, "-m", "pytest", "-p",
              "no:cacheprovider", "-n", "2", "--dist", "loadfile",
              "--no-loadscope-reorder"]  # fmt: skip
    # CPU seconds of pytest and every process under it: unlike the wall clock, this hardly
    # moves when something else runs on the machine, and it is what 2 cores must get through.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([*pytest, "--durations=0"], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = proc.stdout + proc.stderr
    summary = [ln for ln in out.splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    phases = [m.groups() for ln in out.splitlines() if (m := DURATION.match(ln))]
    slowest = phases[: args.slowest]
    print(out[-3000:] if proc.returncode else "")
    for s, phase, test in slowest:
        print(f"{s:>8}s {phase:<5} {test}")
    print(f"pytest wall clock: {wall:.1f} s, CPU {cpu:.0f} s; {summary[-1] if summary else '?'}")

    if args.write_file_seconds and not proc.returncode:
        path = write_file_seconds(phases, os.path.join(ROOT, FILE_SECONDS))
        print(f"wrote {path}")
    if args.write:
        from benchmarks.report import replace_section

        lines = [
            f"`python benchmarks/test_suite.py --write` on {machine_name()}: pytest {wall:.0f} "
            f"s wall on 2 workers, {cpu:.0f} CPU seconds "
            f"({summary[-1].strip('= ') if summary else '?'}); "
            "`make test` adds ruff (a few seconds) and, on a fresh clone, the install (see the "
            "README).",
            "",
            f"The {len(slowest)} slowest (seconds, phase, test):",
            "",
            "| s | phase | test |",
            "|---|---|---|",
            *[f"| {s} | {phase} | `{test}` |" for s, phase, test in slowest],
        ]
        replace_section("Test suite", "\n".join(lines) + "\n")
    return proc.returncode


def write_file_seconds(phases, path) -> str:
    """Writes {"machine": ..., "seconds": {test file: seconds}} to `path` (json), the files
    longest first, from pytest's (seconds, phase, test id) durations; returns `path`."""
    seconds = {}
    for s, _, test in phases:
        test_file = test.split("::")[0]
        seconds[test_file] = seconds.get(test_file, 0.0) + float(s)
    ranked = dict(sorted(((k, round(v, 1)) for k, v in seconds.items()), key=lambda kv: -kv[1]))
    with open(path, "w") as f:
        json.dump({"machine": machine_name(), "seconds": ranked}, f, indent=1)
        f.write("\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
