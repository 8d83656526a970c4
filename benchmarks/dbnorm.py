"""DBNorm's figure: retrieval R@1 both ways and hub occurrence, plain and after DBNorm.

    python benchmarks/dbnorm.py [--workdir runs/demo] [--step N] [--bank-size 1000] [--write]

Evaluates a trained run (default its latest checkpoint) as `vljax eval` does (the run's own
config and `run_evals`), with the run's retrieval evals given the `dbnorm` option: banks of
`--bank-size` held-out pairs from `shapes:retrieval_bank`, once with each method (`dis`,
`ddis`) at dbnorm.py's default betas. `--write` records one row per method in
docs/benchmarks.md ("DBNorm retrieval").
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import ml_collections  # noqa: E402

from benchmarks.report import upsert_row  # noqa: E402
from benchmarks.train_step import machine_name  # noqa: E402
from vljax.choices import DBNORM_METHODS  # noqa: E402
from vljax.evals.run import run_evals  # noqa: E402
from vljax.inference import load_run_encoder  # noqa: E402

SECTION = "DBNorm retrieval"
BANK = "shapes:retrieval_bank"
METRICS = (
    "txt2img_r1",
    "txt2img_r1_dbnorm",
    "img2txt_r1",
    "img2txt_r1_dbnorm",
    "txt2img_hubness",
    "txt2img_hubness_dbnorm",
    "img2txt_hubness",
    "img2txt_hubness_dbnorm",
)


def retrieval_evals(config, method: str, bank_size: int) -> dict:
    """The run's retrieval evals, each with the dbnorm option."""
    evals = {}
    for name, spec in config.evals.items():
        if spec.get("type") == "retrieval":
            entry = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
            evals[name] = {**entry, "dbnorm": dict(bank=BANK, size=bank_size, method=method)}
    return evals


def evaluate(workdir, step, bank_size):
    encoder = load_run_encoder(workdir, step)
    cache = {}  # the test pairs and the bank are drawn once for both methods
    rows = []
    for method in DBNORM_METHODS:
        config = ml_collections.ConfigDict(encoder.run_config.to_dict())
        config.evals = retrieval_evals(config, method, bank_size)
        results = run_evals(config, encoder, encoder.step, cache)
        for name, spec in config.evals.items():
            key = spec.get("key") or name
            row = {"run": workdir, "step": encoder.step, "eval": key, "dbnorm": method}
            row["bank"] = f"{BANK} x {bank_size}"
            row.update({m: results[f"retrieval/{key}/{m}"] for m in METRICS})
            row["machine"] = machine_name()
            rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="runs/demo")
    parser.add_argument("--step", type=int, default=None)
    parser.add_argument("--bank-size", type=int, default=1000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    for row in evaluate(args.workdir, args.step, args.bank_size):
        print(
            f"{row['run']} step {row['step']} {row['eval']} {row['dbnorm']}: "
            f"txt2img R@1 {row['txt2img_r1']:.3f} -> {row['txt2img_r1_dbnorm']:.3f}, "
            f"img2txt R@1 {row['img2txt_r1']:.3f} -> {row['img2txt_r1_dbnorm']:.3f}, "
            f"hub occurrence txt2img {row['txt2img_hubness']:.3f} -> "
            f"{row['txt2img_hubness_dbnorm']:.3f}, img2txt {row['img2txt_hubness']:.3f} -> "
            f"{row['img2txt_hubness_dbnorm']:.3f}"
        )
        if args.write:
            note = (
                "`python benchmarks/dbnorm.py --workdir runs/demo --write`: the CLIP demo run "
                "(`configs/demo.py`) on `shapes:retrieval` (1,000 pairs) as `vljax eval` scores "
                "it, "
                "plain and after DBNorm (arXiv 2310.11612) with banks of held-out pairs "
                "(`shapes:retrieval_bank`), default betas (query bank 1/1.99, gallery bank 3). "
                "Hubness: hub occurrence, the fraction of queries whose top-1 is one of the 1% "
                "most-retrieved gallery items (`vljax.evals.dbnorm.hub_occurrence`)."
            )
            upsert_row(SECTION, row, key=("run", "step", "eval", "dbnorm", "machine"), note=note)


if __name__ == "__main__":
    main()
