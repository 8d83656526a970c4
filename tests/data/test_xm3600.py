"""`vljax prepare --from-xm3600` on a miniature captions.jsonl (3 languages, one missing for one
image, one broken image), then the multilingual retrieval eval against rankings worked out by
hand: per-language keys, their means and the Mean Rank Variance."""

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
# Captions per image and language -> their text embeddings (dot products with the one-hot
# image colours red, green, blue). Green has no German caption.
CAPTIONS = {
    "red": {"en": [(0.2, 0.3, 0.5), (0.9, 0.1, 0)], "de": [(0.4, 0.9, 0.6)],
            "ja": [(0.8, 0.1, 0.1)]},
    "green": {"en": [(0.1, 0.8, 0.1), (0.5, 0.3, 0.2)], "ja": [(0.6, 0.5, 0)]},
    "blue": {"en": [(0.1, 0.5, 0.4), (0.3, 0.3, 0.4)], "de": [(0.1, 0, 0.7)],
             "ja": [(0, 0.3, 0.9)]},
}  # fmt: skip
VECTORS = {
    f"{lang} {name} {j}": v
    for name, langs in CAPTIONS.items()
    for lang, vs in langs.items()
    for j, v in enumerate(vs)
}


class ColourEncoder:
    """Images embed as the one-hot of their dominant channel; texts as VECTORS says."""

    method = get_method("clip")

    def encode_images(self, images):
        return np.eye(3)[np.asarray(images, np.float64).mean(axis=(1, 2)).argmax(axis=1)]

    def encode_texts(self, texts):
        return np.array([VECTORS[t] for t in texts], np.float64).reshape(-1, 3)

    def similarity(self, a, b, direction="img2txt"):
        return np.asarray(a) @ np.asarray(b).T


def write_xm3600(root):
    """captions.jsonl in XM3600's layout and images/<key>.jpg: 3 images, a broken one, a line
    without an image key."""
    (root / "images").mkdir()
    lines = []
    for name, rgb in COLOURS.items():
        Image.new("RGB", (12, 10), rgb).save(root / "images" / f"{name}.jpg")
        obj = {"image/key": name, "image/locale": "en"}
        for lang, vs in CAPTIONS[name].items():
            texts = [f"{lang} {name} {j}" for j in range(len(vs))]
            obj[lang] = {"caption": texts, "caption/tokenized": texts}
        lines.append(json.dumps(obj))
    (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    caps = {"caption": ["x"], "caption/tokenized": ["x"]}
    lines.append(json.dumps({"image/key": "broken", "en": caps, "de": caps, "ja": caps}))
    lines.append(json.dumps({"en": caps}))
    path = root / "captions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_xm3600_prepare_and_multilingual_retrieval(tmp_path, capsys):
    path = write_xm3600(tmp_path)
    data_dir = tmp_path / "tfds"
    args = ["--from-xm3600", str(path), "--images", str(tmp_path / "images")]
    rc = prepare.cli(
        [*args, "--languages", "en,de,ja", "--name", "xm3600"]
        + ["--data-dir", str(data_dir), "--no-progress"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "test=3" in out and "skipped 2: " in out and "missing field 1" in out
    assert "languages missing (those images are kept for their other languages): de 1" in out

    config = load_config("configs/demo.py")
    config.data.data_dir = str(data_dir)
    entry = dict(type="retrieval", dataset="tfds:xm3600:test", lang="en", langs="all")
    config.evals = ml_collections.ConfigDict({"xm3600": entry})
    results = run_evals(config, ColourEncoder(), step=0)
    # en, 6 captions, 3 images: red's first caption ranks red 3rd (green .3, blue .5 above
    # .2), green's second 2nd (red .5), blue's first 2nd (green .5); the rest 1st. Image ->
    # text: blue's best caption (.4) has red's first (.5) above it.
    # de, green left out (no caption): red's caption ranks red 2nd of {red, blue} (blue .6;
    # green's .9 is not in the gallery), blue's 1st; both images find their caption first.
    # ja: green's caption ranks green 2nd (red .6 above .5); every image finds its own first.
    t2i = {"en": [2, 0, 0, 1, 1, 0], "de": [1, 0], "ja": [0, 1, 0]}
    i2t = {"en": [0, 0, 1], "de": [0, 0], "ja": [0, 0, 0]}
    for lang in ("en", "de", "ja"):
        for k in (1, 5, 10):
            got = results[f"retrieval/xm3600/{lang}/txt2img_r{k}"]
            assert got == pytest.approx(np.mean(np.array(t2i[lang]) < k))
            got = results[f"retrieval/xm3600/{lang}/img2txt_r{k}"]
            assert got == pytest.approx(np.mean(np.array(i2t[lang]) < k))
        assert results[f"retrieval/xm3600/{lang}/txt2img_medr"] == 1.0
    assert results["retrieval/xm3600/txt2img_r1_mean"] == pytest.approx((1 / 2 + 1 / 2 + 2 / 3) / 3)
    assert results["retrieval/xm3600/img2txt_r1_mean"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert results["retrieval/xm3600/txt2img_r5_mean"] == 1.0
    # MRV over red and blue (captioned in all 3), first caption per language among them: red
    # ranks 1, 1, 0 (en, de, ja; variance 2/9), blue 0, 0, 0: (2/9 + 0) / 2.
    assert results["retrieval/xm3600/mrv"] == pytest.approx(1 / 9)
    # The main keys: the entry's lang (en).
    assert results["retrieval/xm3600/txt2img_r1"] == results["retrieval/xm3600/en/txt2img_r1"]
    assert results["retrieval/xm3600/img2txt_r1"] == pytest.approx(2 / 3)

    # Main keys in German: green (no German caption) is left out of them, not of the others.
    config.evals = ml_collections.ConfigDict({"xm3600": {**entry, "lang": "de"}})
    results = run_evals(config, ColourEncoder(), step=0)
    assert results["retrieval/xm3600/txt2img_r1"] == results["retrieval/xm3600/de/txt2img_r1"]
    assert results["retrieval/xm3600/txt2img_r1"] == 0.5
    assert results["retrieval/xm3600/ja/txt2img_r1"] == pytest.approx(2 / 3)

    config.evals = ml_collections.ConfigDict({"xm3600": {**entry, "langs": ["en", "fr"]}})
    with pytest.raises(DataError, match="no captions in fr.*its languages are de, en, ja"):
        run_evals(config, ColourEncoder(), step=0)


def test_xm3600_errors_name_the_fix(tmp_path):
    path = write_xm3600(tmp_path)
    base = ["--name", "xm3600", "--data-dir", str(tmp_path / "tfds"), "--no-progress"]
    images = ["--images", str(tmp_path / "images")]
    with pytest.raises(ConfigError, match="unknown XM3600 language code.*xx.*ar, bn"):
        prepare.cli(["--from-xm3600", str(path), *images, "--languages", "en,xx", *base])
    with pytest.raises(DataError, match="--images .* is not a folder.*<image/key>.jpg"):
        prepare.cli(["--from-xm3600", str(path), "--images", str(tmp_path / "nope"), *base])
    with pytest.raises(DataError, match="does not exist.*captions.jsonl"):
        prepare.cli(["--from-xm3600", str(tmp_path / "nope.jsonl"), *images, *base])
    other = tmp_path / "dataset_coco.json"
    other.write_text(json.dumps({"images": [{"filename": "a.jpg"}]}, indent=1))
    with pytest.raises(DataError, match="not JSON lines.*image/key"):
        prepare.cli(["--from-xm3600", str(other), *images, *base])
    other.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="no line with an 'image/key'"):
        prepare.cli(["--from-xm3600", str(other), *images, *base])
    with pytest.raises(ConfigError, match="--languages goes with --from-xm3600"):
        prepare.cli(["--from-karpathy", str(other), *images, "--languages", "en", *base])
