"""`vljax prepare --from-imagenet` on miniature ImageNet folders (class folders, ImageNet-V2's
index folders, the flat layout with the devkit's labels), then the zero-shot eval with the
shipped class names and templates against ranks worked out by hand."""

import ml_collections
import numpy as np
import pytest
import scipy.io
from PIL import Image

from vljax import cli
from vljax.data.evalsets import load_eval_set
from vljax.data.tfds_source import open_builder
from vljax.errors import EXIT_DATA, ConfigError, DataError
from vljax.evals.imagenet_metadata import IMAGENET_NAMES, IMAGENET_TEMPLATES_80
from vljax.evals.run import run_evals
from vljax.methods import get_method

# Class folder -> [(file, grey level, the true class's rank among the split's classes)].
FOLDERS = {
    "n01440764": [("a.JPEG", 20, 0), ("b.png", 50, 2)],  # tench
    "n01443537": [("c.png", 80, 4)],  # goldfish (and an unreadable file)
    "n01484850": [("d.png", 110, 5)],
    "n01491361": [("e.png", 140, 6)],
    "n01494475": [("f.png", 170, 0)],
    "998": [("g.png", 200, 1)],  # ImageNet-V2 names folders by class index: n13133613
    "999": [("h.png", 230, 3)],  # n15075141, "toilet paper"
}
WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n13133613", "n15075141"]
RANKS = {level: rank for files in FOLDERS.values() for _, level, rank in files}


def image(path, level):
    Image.new("RGB", (10, 7), (level,) * 3).save(path)


def prepare(args, tmp_path, name):
    argv = ["prepare", *args, "--name", name, "--data-dir", str(tmp_path / "tfds")]
    return cli.main([*argv, "--no-progress"])


def written(tmp_path, name):
    """{id: wnid} of the prepared test split, and its class list."""
    builder = open_builder(name, str(tmp_path / "tfds"))
    names = builder.info.features["label"].names
    ds = builder.as_data_source(split="test")
    return {ex["id"].decode(): names[ex["label"]] for ex in ds}, names


def eval_config(tmp_path, **entry):
    return ml_collections.ConfigDict(
        dict(
            model=dict(image=dict(image_size=8)),
            data=dict(data_dir=str(tmp_path / "tfds"), train=dict(lang="en")),
            evals=dict(imagenet=dict(type="zeroshot", dataset="tfds:imagenet:test", **entry)),
        )
    )


class RankEncoder:
    """A prompt embeds as the one-hot of its class; an image (a grey level) as scores that put
    its true class at the rank RANKS gives it (logit 7 for the first class, 6 for the next...)."""

    method = get_method("clip")

    def __init__(self, classnames, labels_by_level):
        self.classes = {
            t.format(n): c for c, n in enumerate(classnames) for t in IMAGENET_TEMPLATES_80
        }
        self.labels_by_level, self.n = labels_by_level, len(classnames)

    def encode_texts(self, texts):
        return np.eye(self.n)[[self.classes[t] for t in texts]]

    def encode_images(self, images):
        out = []
        for im in np.asarray(images, np.float64):
            level = min(RANKS, key=lambda g: abs(g - im.mean()))
            true = self.labels_by_level[level]
            order = [c for c in range(self.n) if c != true]
            order.insert(RANKS[level], true)
            scores = np.empty(self.n)
            scores[order] = np.arange(self.n, 0, -1)
            out.append(scores)
        return np.array(out)

    def similarity(self, a, b, direction="img2txt"):
        return np.asarray(a) @ np.asarray(b).T


def test_class_folders_prepare_and_score_among_their_own_classes(tmp_path):
    root = tmp_path / "val"
    for folder, files in FOLDERS.items():
        (root / folder).mkdir(parents=True)
        for name, level, _ in files:
            image(root / folder / name, level)
    (root / "n01443537" / "bad.JPEG").write_bytes(b"\xff\xd8 truncated")
    (root / "notes").mkdir()
    image(root / "notes" / "x.png", 0)
    assert prepare(["--from-imagenet", str(root)], tmp_path, "imagenet") == 0

    labels, classes = written(tmp_path, "imagenet")
    assert classes == WNIDS  # the wnids present, in the standard (sorted) order
    assert labels["n01440764/a.JPEG"] == "n01440764" and labels["998/g.png"] == "n13133613"
    assert len(labels) == 8
    skipped = (tmp_path / "tfds" / "imagenet" / "skipped.jsonl").read_text()
    assert "n01443537/bad.JPEG" in skipped and "notes/" in skipped

    config = eval_config(tmp_path, classnames="imagenet", templates="imagenet80")
    data = load_eval_set(config.evals.imagenet, config)
    assert data["classnames"][:2] == ["tench", "goldfish"]
    assert data["classnames"][-1] == "toilet paper" == IMAGENET_NAMES["n15075141"]
    assert len(data["classnames"]) == 7 and len(data["templates"]) == 80
    levels = [int(round(im.mean())) for im in data["images"]]
    by_level = {min(RANKS, key=lambda g: abs(g - v)): y for v, y in zip(levels, data["labels"])}
    results = run_evals(config, RankEncoder(data["classnames"], by_level), 0)
    # Ranks 0, 2, 4, 5, 6, 0, 1, 3 among the split's 7 classes: 2 in the top 1, 6 in the top 5.
    assert results["zeroshot/imagenet/top1"] == pytest.approx(2 / 8)
    assert results["zeroshot/imagenet/top5"] == pytest.approx(6 / 8)


def write_meta(path, by_id):
    """A miniature devkit meta.mat: the synsets struct with the fields vljax reads (plus an
    inner node, ILSVRC2012_ID > 1000, as the real file has)."""
    rows = [*by_id.items(), (1001, "n00001740")]
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")]
    synsets = np.array([(i, w, 0 if i <= 1000 else 3) for i, w in rows], dtype=dtype)
    scipy.io.savemat(path, {"synsets": synsets.reshape(-1, 1)})


def test_flat_layout_with_the_ground_truth_file_or_wnids(tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    for n, level in enumerate([20, 50, 80, 110], 1):
        image(flat / f"ILSVRC2012_val_{n:08d}.JPEG", level)
    image(flat / "ILSVRC2012_val_00000009.JPEG", 0)  # no line 9
    devkit = tmp_path / "devkit"
    devkit.mkdir()
    # The devkit numbers its synsets in its own order, not the sorted wnids'.
    write_meta(devkit / "meta.mat", {1: "n02119789", 2: "n01440764", 3: "n15075141"})
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("2\n1\n3\n2\n")
    gt = str(devkit / "ILSVRC2012_validation_ground_truth.txt")
    assert prepare(["--from-imagenet", str(flat), "--labels", gt], tmp_path, "flat") == 0
    want = {
        "ILSVRC2012_val_00000001.JPEG": "n01440764",
        "ILSVRC2012_val_00000002.JPEG": "n02119789",  # kit fox
        "ILSVRC2012_val_00000003.JPEG": "n15075141",
        "ILSVRC2012_val_00000004.JPEG": "n01440764",
    }
    labels, classes = written(tmp_path, "flat")
    assert labels == want and classes == ["n01440764", "n02119789", "n15075141"]
    assert "no label 1" in capsys.readouterr().out

    # One wnid per image needs no meta.mat.
    wnids = tmp_path / "synset_labels.txt"
    wnids.write_text("n01440764\nn02119789\nn15075141\nn01440764\n")
    assert prepare(["--from-imagenet", str(flat), "--labels", str(wnids)], tmp_path, "flat2") == 0
    assert written(tmp_path, "flat2")[0] == want

    # IDs without meta.mat, or a flat folder without --labels: the error names the fix.
    (devkit / "meta.mat").unlink()
    assert prepare(["--from-imagenet", str(flat), "--labels", gt], tmp_path, "x") == EXIT_DATA
    assert "meta.mat next to the labels file" in capsys.readouterr().err
    assert prepare(["--from-imagenet", str(flat)], tmp_path, "x") == EXIT_DATA
    assert "--labels" in capsys.readouterr().err


def test_imagenet_classnames_need_wnid_labels(tmp_path):
    config = eval_config(tmp_path, classnames="imagenet", size=24)
    config.evals.imagenet.dataset = "shapes:zeroshot"
    config.model.image.image_size = 32
    with pytest.raises(DataError, match="--from-imagenet"):
        load_eval_set(config.evals.imagenet, config)
    config.evals.imagenet.update(classnames=None, templates="imagenet81")
    with pytest.raises(ConfigError, match="imagenet80"):
        load_eval_set(config.evals.imagenet, config)
