"""End to end through the CLI: prepare, train a few steps on the prepared data, zero-shot eval."""

import json
import os

from corpus import write_manifest_corpus

from vljax import cli


def test_train_and_zeroshot_eval_on_prepared(tmp_path):
    manifest, _ = write_manifest_corpus(tmp_path / "src", n_per_class=4)
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
    args = [
        "train",
        "--config",
        "configs/demo.py",
        "--workdir",
        workdir,
        "--config.data.train.dataset=tfds:colours",
        f"--config.data.data_dir={data_dir}",
        "--config.data.train.lang=any",
        "--config.batch_size=8",
        "--config.total_steps=2",
        "--config.log_every_steps=1",
        "--config.checkpoint_every_steps=2",
        "--config.model.image.image_size=32",
        f"--config.evals={json.dumps(evals)}",
        "--config.model.image.depth=1",
        "--config.model.text.depth=1",
    ]
    assert cli.main(args) in (0, None)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        steps = [json.loads(line) for line in f]
    assert steps[-1]["step"] == 2 and all("loss" in s for s in steps)
    assert os.path.exists(os.path.join(workdir, "tokenizer.model"))
    assert cli.main(["eval", "--workdir", workdir]) in (0, None)
    with open(os.path.join(workdir, "eval.json")) as f:
        result = json.load(f)
    assert 0.0 <= result["zeroshot/colours/top1"] <= 1.0
