"""`vljax prepare --from-karpathy` on a miniature Karpathy split file, then the 5-caption
retrieval eval against rankings worked out by hand."""

import json

import ml_collections
import numpy as np
import pytest
from PIL import Image

from vljax.config import load_config
from vljax.data import prepare
from vljax.errors import ConfigError, DataError
from vljax.evals.run import run_evals
from vljax.methods import get_method

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
# Caption j of each image -> its text embedding (dot products with the one-hot image colours).
TEXTS = {
    "red": [(0.1, 0.9, 0), (0, 0.2, 0.8), (0.9, 0.1, 0), (0.7, 0, 0.3), (0.6, 0.4, 0)],
    "green": [(0, 0.8, 0.2), (0.3, 0.7, 0), (0, 0.6, 0.4), (0.2, 0.3, 0.5), (0.1, 0.85, 0.05)],
    "blue": [(0.8, 0, 0.2), (0.4, 0.35, 0.25), (0, 0.45, 0.55), (0.1, 0.2, 0.7), (0.05, 0.15, 0.8)],
}
VECTORS = {f"a {c} picture, caption {j}": v for c, vs in TEXTS.items() for j, v in enumerate(vs)}


class ColourEncoder:
    """Images embed as the one-hot of their dominant channel; texts as VECTORS says."""

    method = get_method("clip")

    def encode_images(self, images):
        return np.eye(3)[np.asarray(images, np.float64).mean(axis=(1, 2)).argmax(axis=1)]

    def encode_texts(self, texts):
        return np.array([VECTORS[t] for t in texts], np.float64)

    def similarity(self, a, b, direction="img2txt"):
        return np.asarray(a) @ np.asarray(b).T


def write_karpathy(root):
    """3 test images with 5 captions each in val2014/, one unreadable and one missing test
    image, and a train image (not written by default)."""
    (root / "images" / "val2014").mkdir(parents=True)
    entries = []
    for name, rgb in COLOURS.items():
        Image.new("RGB", (12, 10), rgb).save(root / "images" / "val2014" / f"{name}.png")
        sentences = [{"raw": f" a {name} picture, caption {j} ", "tokens": []} for j in range(5)]
        entries.append(dict(filepath="val2014", filename=f"{name}.png", split="test",
                            sentences=sentences))  # fmt: skip
    (root / "images" / "val2014" / "broken.png").write_bytes(b"\x89PNG not really")
    for name, split in [("broken.png", "test"), ("gone.png", "test"), ("red.png", "train")]:
        entries.append(dict(filepath="val2014", filename=name, split=split,
                            sentences=[{"raw": "x"}] * 5))  # fmt: skip
    path = root / "dataset_coco.json"
    path.write_text(json.dumps({"images": entries, "dataset": "coco"}))
    return path


def test_karpathy_five_caption_retrieval(tmp_path, capsys):
    path = write_karpathy(tmp_path)
    data_dir = tmp_path / "tfds"
    args = ["--from-karpathy", str(path), "--images", str(tmp_path / "images")]
    rc = prepare.cli([*args, "--name", "coco", "--data-dir", str(data_dir), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "test=3" in out and "train" not in out.splitlines()[0]
    assert "skipped 2: " in out and "missing file 1" in out and "not an image 1" in out

    config = load_config("configs/demo.py")
    config.data.data_dir = str(data_dir)
    config.evals = ml_collections.ConfigDict(
        {"coco": {"type": "retrieval", "dataset": "tfds:coco:test"}}
    )
    results = run_evals(config, ColourEncoder(), step=0)
    # Text -> image, each caption among the 3 images: red's captions 0 and 1 rank their image
    # 2nd and 3rd, green's caption 3 2nd, blue's captions 0 and 1 2nd and 3rd; the rest 1st.
    t2i = np.array([1, 2, 0, 0, 0, 0, 0, 0, 1, 0, 1, 2, 0, 0, 0])
    # Image -> text, among the 15 captions: red's first caption is 8th (7 texts score above
    # 0.1) but its third (0.9) is 1st: a hit; green's best (0.85) is 2nd after red's first
    # caption (0.9); blue's best (0.8) ties with red's caption 1, which does not count.
    i2t = np.array([0, 1, 0])
    for k in (1, 5, 10):
        assert results[f"retrieval/coco/txt2img_r{k}"] == pytest.approx(np.mean(t2i < k))
        assert results[f"retrieval/coco/img2txt_r{k}"] == pytest.approx(np.mean(i2t < k))
    assert results["retrieval/coco/txt2img_r1"] == pytest.approx(10 / 15)
    assert results["retrieval/coco/img2txt_r1"] == pytest.approx(2 / 3)
    assert results["retrieval/coco/txt2img_medr"] == 1.0


def test_karpathy_errors_name_the_fix(tmp_path):
    path = write_karpathy(tmp_path)
    base = ["--name", "coco", "--data-dir", str(tmp_path / "tfds"), "--no-progress"]
    with pytest.raises(DataError, match="--images .* is not a folder.*train2014"):
        prepare.cli(["--from-karpathy", str(path), "--images", str(tmp_path / "nope"), *base])
    with pytest.raises(DataError, match="--images"):
        prepare.cli(["--from-karpathy", str(path), *base])
    other = tmp_path / "pairs.json"
    other.write_text(json.dumps({"annotations": [{"image_id": 1, "caption": "a dog"}]}))
    images = ["--images", str(tmp_path / "images")]
    with pytest.raises(DataError, match="not a Karpathy split file.*dataset_coco.json"):
        prepare.cli(["--from-karpathy", str(other), *images, *base])
    with pytest.raises(DataError, match="no images in split.*test 5, train 1"):
        prepare.cli(["--from-karpathy", str(path), *images, "--split", "val", *base])
    with pytest.raises(ConfigError, match="--split 'testing'.*restval"):
        prepare.cli(["--from-karpathy", str(path), *images, "--split", "testing", *base])
