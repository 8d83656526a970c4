import json
import os
from collections import Counter

import numpy as np
import pytest
import tensorflow_datasets as tfds
from corpus import (
    EXPECTED_SKIPS,
    write_folder_corpus,
    write_manifest_corpus,
    write_webdataset_corpus,
)

from vljax.data import prepare


def _read(name, data_dir, split="train"):
    ds = tfds.data_source(name, data_dir=str(data_dir))[split]
    return [ds[i] for i in range(len(ds))]


def test_manifest_labels_splits_languages(tmp_path):
    manifest, good = write_manifest_corpus(tmp_path / "src", n_per_class=3)
    rc = prepare.cli(
        [
            "--manifest",
            manifest,
            "--name",
            "colours",
            "--data-dir",
            str(tmp_path / "d"),
            "--no-progress",
        ]
    )
    assert rc == 0
    train, test = _read("colours", tmp_path / "d"), _read("colours", tmp_path / "d", "test")
    assert len(train) + len(test) == good and len(test) == 3
    builder = tfds.builder("colours", data_dir=str(tmp_path / "d"))
    names = builder.info.features["label"].names
    assert names == ["blue", "green", "red"]
    for ex in train + test:
        caps = [c.decode() for c in ex["captions"]]
        langs = [x.decode() for x in ex["langs"]]
        assert langs == ["en", "zh"]
        label = names[ex["label"]]
        assert caps[0] == f"a {label} picture"
        rgb = ex["image"].reshape(-1, 3).mean(0)
        ref = {"red": 0, "green": 1, "blue": 2}[label]
        assert np.argmax(rgb) == ref  # the image is the colour its label says
    assert (tmp_path / "d" / "colours" / "skipped.jsonl").read_text() == ""


def test_messy_manifest(tmp_path, capsys):
    manifest, good = write_manifest_corpus(tmp_path / "src", n_per_class=2, messy=True)
    rc = prepare.cli(
        [
            "--manifest",
            manifest,
            "--name",
            "messy",
            "--data-dir",
            str(tmp_path / "d"),
            "--max-side",
            "64",
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    exs = _read("messy", tmp_path / "d") + _read("messy", tmp_path / "d", "test")
    assert len(exs) == good
    ids = sorted(ex["id"].decode().split()[-1] for ex in exs)
    assert "cmyk.jpg" in ids and "gray16.png" in ids and "truncated.jpg" not in ids
    for ex in exs:
        assert ex["image"].ndim == 3 and ex["image"].shape[-1] == 3
        assert max(ex["image"].shape[:2]) <= 64
    by_id = {ex["id"].decode().split()[-1]: ex for ex in exs}
    assert by_id["big.png"]["image"].shape[:2] == (21, 64)  # 300x100 -> 64 on the long side
    assert [c.decode() for c in by_id["cmyk.jpg"]["captions"]] == ["a red picture", "red again"]
    assert by_id["cmyk.jpg"]["label"] == -1
    skipped = [
        json.loads(x) for x in (tmp_path / "d" / "messy" / "skipped.jsonl").read_text().splitlines()
    ]
    assert Counter(s["reason"] for s in skipped) == EXPECTED_SKIPS
    assert f"skipped {sum(EXPECTED_SKIPS.values())}" in out
    assert not [p for p in os.listdir(tmp_path / "d") if p.startswith(".")]


def test_folder_and_webdataset(tmp_path):
    write_folder_corpus(tmp_path / "f", n=2)
    rc = prepare.cli(
        [
            "--from-folder",
            str(tmp_path / "f"),
            "--name",
            "folder",
            "--label-from-dir",
            "--data-dir",
            str(tmp_path / "d"),
            "--no-progress",
        ]
    )
    assert rc == 0
    exs = _read("folder", tmp_path / "d")
    assert len(exs) == 7  # 6 captioned + one labelled image without a caption file
    assert sum(len(e["captions"]) == 2 for e in exs) == 6
    shards = write_webdataset_corpus(tmp_path / "w", n=2)
    rc = prepare.cli(
        [
            "--from-webdataset",
            *shards,
            "--name",
            "wds",
            "--data-dir",
            str(tmp_path / "d"),
            "--no-progress",
        ]
    )
    assert rc == 0
    exs = _read("wds", tmp_path / "d")
    assert len(exs) == 6
    skipped = (tmp_path / "d" / "wds" / "skipped.jsonl").read_text().splitlines()
    assert len(skipped) == 2 and all("missing field" in s for s in skipped)  # orphan.txt x2


def test_existing_and_atomic(tmp_path, monkeypatch):
    manifest, _ = write_manifest_corpus(tmp_path / "src", n_per_class=1)
    args = [
        "--manifest",
        manifest,
        "--name",
        "x",
        "--data-dir",
        str(tmp_path / "d"),
        "--no-progress",
    ]
    assert prepare.cli(args) == 0
    assert prepare.cli(args) == 2  # exists, no --overwrite

    def crash(*a, **k):
        raise RuntimeError("crash mid-prepare")

    monkeypatch.setattr(prepare, "check_image", crash)
    with pytest.raises(RuntimeError):
        prepare.cli(
            [
                "--manifest",
                manifest,
                "--name",
                "y",
                "--data-dir",
                str(tmp_path / "d"),
                "--no-progress",
            ]
        )
    assert sorted(os.listdir(tmp_path / "d")) == ["x"]  # no half dataset, no temp dirs left
