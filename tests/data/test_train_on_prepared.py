"""End to end through the CLI: prepare, train a few steps on the prepared data, zero-shot eval."""

import json
import os

from corpus import write_manifest_corpus

from tests.train.tiny import tiny_overrides
from vljax import cli

# The trainer tests' tiny run (tests/train/tiny.py: one block per tower, width 32, 12 steps of
# 16): the data path is under test, not the demo model, whose width-128 step compiles far
# longer; the step is the program the trainer tests' shared run compiles (the session's
# compile cache serves whichever comes second). A batch needs 16 training examples.
STEPS = 12


def test_train_and_zeroshot_eval_on_prepared(tmp_path):
    manifest, _ = write_manifest_corpus(tmp_path / "src", n_per_class=7)  # 18 to train
    data_dir = str(tmp_path / "d")
    assert (
        cli.main(
            [
                "prepare",
                "--manifest",
                manifest,
                "--name",
                "colours",
                "--data-dir",
                data_dir,
                "--no-progress",
            ]
        )
        == 0
    )
    workdir = str(tmp_path / "run")
    evals = {"colours": {"type": "zeroshot", "dataset": "tfds:colours:test", "lang": "en"}}
    changes = {
        "total_steps": STEPS,
        "checkpoint_every_steps": STEPS,
        "evals": json.dumps(evals),
        "data.train.dataset": "tfds:colours",
        "data.data_dir": data_dir,
        "data.train.lang": "any",
    }
    args = ["train", "--config", "configs/demo.py", "--workdir", workdir]
    args += [f"--config.{k}={v}" for k, v in tiny_overrides(**changes)]
    assert cli.main(args) in (0, None)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        steps = [json.loads(line) for line in f]
    assert steps[-1]["step"] == STEPS and all("loss" in s for s in steps)
    assert os.path.exists(os.path.join(workdir, "tokenizer.model"))
    assert cli.main(["eval", "--workdir", workdir]) in (0, None)
    with open(os.path.join(workdir, "eval.json")) as f:
        result = json.load(f)
    assert 0.0 <= result["zeroshot/colours/top1"] <= 1.0
