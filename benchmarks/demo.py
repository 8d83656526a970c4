"""End-to-end demo time: wall clock of `vljax train --config configs/demo.py` (tokenizer,
compile, 400 steps, final eval, report) in a fresh workdir, with its eval results.

    python benchmarks/demo.py [--write]    # --write records it in docs/benchmarks.md

Issue target: <= 5 minutes on the 2-core CPU machine, zero-shot top-1 >= 0.9 and both
retrieval R@1 >= 0.5.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/demo.py")
    parser.add_argument("--write", action="store_true", help="record in docs/benchmarks.md")
    args = parser.parse_args(argv)

    vljax = os.path.join(os.path.dirname(sys.executable), "vljax")
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        subprocess.run(
            [vljax, "train", "--config", args.config, "--workdir", workdir], cwd=ROOT, check=True
        )
        wall = time.perf_counter() - start
        with open(os.path.join(workdir, "eval.json")) as f:
            results = json.load(f)

    from benchmarks.train_step import machine_name

    row = {
        "config": args.config,
        "machine": machine_name(),
        "wall_s": round(wall, 1),
        "steps": results["step"],
        **{k: round(v, 3) for k, v in results.items() if k.endswith(("top1", "_r1"))},
    }
    for key, value in row.items():
        print(f"{key:>28}: {value}")
    if args.write:
        from benchmarks.report import upsert_row

        note = (
            "`python benchmarks/demo.py --write`: wall clock of `vljax train` on the demo config "
            "in a fresh workdir (tokenizer, compile, training, final eval, report), venv "
            "already installed. Target: <= 300 s, zero-shot >= 0.9, R@1 >= 0.5 both ways."
        )
        upsert_row("Demo end to end", row, key=("config", "machine"), note=note)


if __name__ == "__main__":
    main()
