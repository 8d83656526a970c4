"""Long-CLIP's figure: long-caption retrieval before and after, and what the short-caption
evals keep.

    python benchmarks/long_clip.py [--runs runs/demo runs/long_clip ...] [--write]

Evaluates both runs on `shapes_long:retrieval` (2 x 2 grids, captions of about 30 tokens;
the CLIP demo reads only the first 24) and on the demo's own shapes evals, and writes the
table to docs/benchmarks.md ("Long-CLIP long captions").
"""

import argparse
import os
import sys

import ml_collections

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.report import upsert_row  # noqa: E402
from benchmarks.train_step import machine_name  # noqa: E402
from configs import demo, long_clip  # noqa: E402
from vljax.evals.run import run_evals  # noqa: E402
from vljax.inference import load_run_encoder  # noqa: E402

KEYS = (
    "retrieval/shapes_long/txt2img_r1",
    "retrieval/shapes_long/img2txt_r1",
    "retrieval/shapes/txt2img_r1",
    "retrieval/shapes/img2txt_r1",
    "zeroshot/shapes/top1",
)


def evaluate(workdir):
    encoder = load_run_encoder(workdir)
    config = ml_collections.ConfigDict(encoder.run_config.to_dict())
    config.evals = dict(shapes_long_retrieval=long_clip.LONG_EVAL, **demo.get_config().evals)
    results = run_evals(config, encoder, encoder.step)
    row = {
        "run": workdir,
        "method": encoder.run_config.method,
        "text_positions": int(encoder.model_config.text.max_len),
        "step": encoder.step,
        "machine": machine_name(),
    }
    row.update({k: results[k] for k in KEYS})
    return row


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", nargs="+", default=["runs/demo", "runs/long_clip"])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    for workdir in args.runs:
        row = evaluate(workdir)
        print(row)
        if args.write:
            note = (
                "`python benchmarks/long_clip.py --write`: the CLIP demo (`configs/demo.py`, 24 "
                "text positions) and Long-CLIP fine-tuned from it (`configs/long_clip.py:demo`, 36 "
                "positions), on long-caption retrieval (`shapes_long:retrieval`, 500 grids) "
                "and on the demo's short-caption evals. `runs/long_clip_24`: the same fine-tune "
                "without stretching (`--config.model.text.max_len=24`: long captions cut at 24 "
                "tokens)."
            )
            upsert_row("Long-CLIP long captions", row, key=("run", "machine"), note=note)


if __name__ == "__main__":
    main()
