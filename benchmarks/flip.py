"""FLIP's speed: train-step images/s at patch mask ratio 0, 0.5 and 0.75, same config.

    python benchmarks/flip.py [--config configs/flip.py:demo] [--write] [--config.k=v ...]

Runs benchmarks/train_step.py once per ratio (median step time after warm-up, FLOPs from the
compiled step) and writes the table to docs/benchmarks.md ("FLIP patch dropout").
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import train_step  # noqa: E402
from benchmarks.report import upsert_row  # noqa: E402

RATIOS = (0.0, 0.5, 0.75)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/flip.py:demo")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--write", action="store_true")
    args, overrides = parser.parse_known_args(argv)
    rows = []
    for ratio in RATIOS:
        row = train_step.main(
            ["--config", args.config, "--steps", str(args.steps), *overrides,
             f"--config.model.image.mask_ratio={ratio}"]
        )  # fmt: skip
        rows.append(row)
    base = rows[0]["images_per_s"]
    for ratio, row in zip(RATIOS, rows, strict=True):
        summary = {
            "config": args.config + "".join(f" {o}" for o in overrides),
            "machine": row["machine"],
            "mask_ratio": ratio,
            "batch": row["batch"],
            "step_ms": row["step_ms"],
            "images_per_s": row["images_per_s"],
            "speedup": row["images_per_s"] / base,
            "gflops_per_step": row["gflops_per_step"],
        }
        print(summary)
        if args.write:
            note = (
                "`python benchmarks/flip.py --write`: the train step at FLIP patch-dropout "
                "ratios 0 / 0.5 / 0.75, same config (median of 5 steps after warm-up). The "
                "demo's conv stem runs before the dropout, so only the transformer gets cheaper."
            )
            upsert_row(
                "FLIP patch dropout",
                summary,
                key=("config", "machine", "mask_ratio", "batch"),
                note=note,
            )


if __name__ == "__main__":
    main()
