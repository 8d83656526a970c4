import io
import json
import os
import tarfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from corpus import (
    EXPECTED_SKIPS,
    encode,
    image,
    write_folder_corpus,
    write_manifest_corpus,
    write_webdataset_corpus,
)
from PIL import ExifTags, Image, ImageFile

from vljax import cli
from vljax.data import prepare
from vljax.errors import EXIT_DATA, ConfigError, DataError


def _read(name, data_dir, split="train"):
    ds = tfds.data_source(name, data_dir=str(data_dir))[split]
    return [ds[i] for i in range(len(ds))]


def _prepare(source_args, name, data_dir, *extra):
    return prepare.cli(
        [*source_args, "--name", name, "--data-dir", str(data_dir), "--no-progress", *extra]
    )


def _skipped(name, data_dir):
    text = (data_dir / name / "skipped.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def _append(manifest, *lines: bytes):
    with open(manifest, "ab") as f:
        for line in lines:
            f.write(line + b"\n")


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
    with pytest.raises(ConfigError, match="exists; pass --overwrite"):
        prepare.cli(args)

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


# -- EXIF orientation --------------------------------------------------------------------------


def _marked(w=60, h=30):
    """Blue [h, w] pixels with a red 12x12 block in the top-left corner."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:] = (40, 80, 240)
    arr[:12, :12] = (220, 30, 30)
    return arr


def _save_with_orientation(arr, path, orientation):
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[ExifTags.Base.Orientation] = orientation
    img.save(path, "JPEG", quality=95, exif=exif)


# What a viewer shows for each EXIF orientation, written with numpy (not PIL): 3 turns the
# picture half round, 6 a quarter turn clockwise, 8 a quarter turn counter-clockwise.
UPRIGHT = {3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1)}


def test_exif_rotated_jpeg_is_prepared_upright(tmp_path):
    """A phone photo: sensor pixels 60 wide, 30 high, EXIF orientation 6 (turn clockwise)."""
    src = tmp_path / "src"
    src.mkdir()
    _save_with_orientation(_marked(), src / "phone.jpg", 6)
    (src / "m.jsonl").write_text(json.dumps(dict(image="phone.jpg", caption="a phone photo")))
    assert _prepare(["--manifest", str(src / "m.jsonl")], "phone", tmp_path / "d") == 0
    [ex] = _read("phone", tmp_path / "d")
    got = ex["image"].astype(int)
    assert got.shape == (60, 30, 3)  # width and height swapped: 30 wide, 60 high
    red, blue = np.array([220, 30, 30]), np.array([40, 80, 240])
    assert np.abs(got[:8, -8:] - red).max() < 40  # the marker is now in the top-right corner
    assert np.abs(got[:8, :8] - blue).max() < 40  # and the top-left is background
    assert np.abs(got - UPRIGHT[6](_marked())).mean() < 5


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_applied_once_and_removed(tmp_path, orientation):
    path = str(tmp_path / "x.jpg")
    _save_with_orientation(_marked(), path, orientation)
    data, reason, _ = prepare.check_image((path, None, None, prepare.MAX_PIXELS))
    assert reason == ""
    out = Image.open(io.BytesIO(data))
    # No orientation left for a viewer (or a later decoder) to apply a second time.
    assert ExifTags.Base.Orientation not in out.getexif()
    want = UPRIGHT[orientation](_marked())
    assert np.asarray(out).shape == want.shape
    assert np.abs(np.asarray(out).astype(int) - want).mean() < 5


def test_upright_exif_keeps_original_bytes(tmp_path):
    path = str(tmp_path / "x.jpg")
    _save_with_orientation(_marked(), path, 1)
    data, reason, _ = prepare.check_image((path, None, None, prepare.MAX_PIXELS))
    assert reason == "" and data == Path(path).read_bytes()


# -- text encodings --------------------------------------------------------------------------


def test_non_utf8_manifest_line_is_skipped_counted_and_listed(tmp_path, capsys):
    manifest, good = write_manifest_corpus(tmp_path / "src", n_per_class=1)
    with open(manifest, "rb") as f:
        text = f.read()
    with open(manifest, "wb") as f:  # a BOM, as Windows editors write one: still UTF-8
        f.write(b"\xef\xbb\xbf" + text)
    _append(
        manifest,
        b'{"image": "red_0.jpeg", "caption": "caf\xe9 au lait"}',  # Latin-1, not UTF-8
        b'{"image": "red_0.jpeg", "caption": "lone \\ud800 surrogate"}',  # valid JSON, no char
        '{"image": "red_0.jpeg", "caption": "café"}'.encode(),
    )
    assert _prepare(["--manifest", manifest], "enc", tmp_path / "d") == 0
    out = capsys.readouterr().out
    exs = _read("enc", tmp_path / "d") + _read("enc", tmp_path / "d", "test")
    captions = [c.decode() for ex in exs for c in ex["captions"]]
    assert len(exs) == good + 1 and "café" in captions
    assert not any("\ufffd" in c for c in captions)  # nothing was read with replacements
    skipped = _skipped("enc", tmp_path / "d")
    assert [(s["source"], s["reason"]) for s in skipped] == [
        ("manifest.jsonl:4", "not utf-8"),
        ("manifest.jsonl:5", "not utf-8"),
    ]
    assert "byte 0xe9 at offset" in skipped[0]["detail"]
    assert "skipped 2: not utf-8 2" in out


def test_non_utf8_sidecar_and_webdataset_text_are_skipped(tmp_path):
    write_folder_corpus(tmp_path / "f", n=1)
    (tmp_path / "f" / "red" / "0.txt").write_bytes(b"a red \xff picture\n")
    assert _prepare(["--from-folder", str(tmp_path / "f")], "fold", tmp_path / "d") == 0
    assert len(_read("fold", tmp_path / "d")) == 2  # green, blue (red/nocaption has no label)
    skipped = _skipped("fold", tmp_path / "d")
    assert [s["reason"] for s in skipped if s["source"] == "red/0.jpg"] == ["not utf-8"]

    shard = tmp_path / "bad.tar"
    with tarfile.open(shard, "w") as tar:
        for key, caption in [("a", b"fine"), ("b", b"caf\xe9")]:
            for name, data in [
                (f"{key}.jpg", encode(image("red"), "JPEG")),
                (f"{key}.txt", caption),
            ]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    assert _prepare(["--from-webdataset", str(shard)], "wenc", tmp_path / "d") == 0
    assert [e["captions"][0] for e in _read("wenc", tmp_path / "d")] == [b"fine"]
    skipped = _skipped("wenc", tmp_path / "d")
    assert [(s["source"], s["reason"]) for s in skipped] == [("bad.tar:b", "not utf-8")]


def test_utf16_manifest_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes('{"image": "a.jpg", "caption": "x"}\n'.encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16.*iconv"):
        _prepare(["--manifest", str(path)], "u16", tmp_path / "d")


# -- caption length --------------------------------------------------------------------------


def test_long_captions_are_truncated_and_counted(tmp_path, capsys):
    manifest, good = write_manifest_corpus(tmp_path / "src", n_per_class=1)
    words = "a very long scraped page " * 4000  # 100,000 characters, as in the issue
    chinese = "一张红色的图片" * 100  # no spaces: cut at the limit itself
    _append(
        manifest,
        json.dumps(dict(image="red_0.jpeg", caption=[words, "short"])).encode(),
        json.dumps(dict(image="red_0.jpeg", caption={"zh": chinese})).encode(),
    )
    assert (
        _prepare(["--manifest", manifest], "long", tmp_path / "d", "--max-caption-chars", "100")
        == 0
    )
    out = capsys.readouterr().out
    exs = _read("long", tmp_path / "d") + _read("long", tmp_path / "d", "test")
    assert len(exs) == good + 2  # truncated, not skipped
    captions = [c.decode() for ex in exs for c in ex["captions"]]
    cut_words = next(c for c in captions if c.startswith("a very long"))
    assert 80 <= len(cut_words) <= 100 and words.startswith(cut_words)
    assert cut_words.endswith("page")  # cut between words, not inside one
    assert chinese[:100] in captions and "short" in captions
    assert "truncated 2 captions to --max-caption-chars 100" in out
    assert _skipped("long", tmp_path / "d") == []


def test_truncate_caption():
    assert prepare.truncate_caption("a dog on a mat", 100) == "a dog on a mat"
    assert prepare.truncate_caption("a dog on a mat", 10) == "a dog on a"  # ends on a word
    assert prepare.truncate_caption("a dog on a mat", 9) == "a dog on"  # drops the cut word
    assert prepare.truncate_caption("x" * 30, 10) == "x" * 10  # one word longer than the limit
    assert prepare.truncate_caption("ab " + "x" * 30, 10) == "ab " + "x" * 7  # keeps over half
    assert len(prepare.truncate_caption("word " * 10**5, prepare.MAX_CAPTION_CHARS)) <= 1000


# -- image size ------------------------------------------------------------------------------


def test_image_over_pixel_limit_is_skipped_without_decoding(tmp_path, monkeypatch, capsys):
    manifest, good = write_manifest_corpus(tmp_path / "src", n_per_class=1)  # 40x30 images
    Image.new("RGB", (200, 200), (1, 2, 3)).save(tmp_path / "src" / "huge.png")
    huge = dict(image="huge.png", caption="too big", split="test")
    _append(manifest, json.dumps(huge).encode())
    decoded = []
    load = ImageFile.ImageFile.load

    def spy(self):
        decoded.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    assert _prepare(["--manifest", manifest], "px", tmp_path / "d", "--max-pixels", "10000") == 0
    assert len(_read("px", tmp_path / "d", "test")) == good  # one per class, all in "test"
    [skip] = _skipped("px", tmp_path / "d")
    assert skip["reason"] == "too many pixels" and skip["source"].endswith("huge.png")
    assert skip["detail"] == "200x200 = 40000 pixels > --max-pixels 10000"
    assert (40, 30) in decoded and (200, 200) not in decoded  # refused from the header alone
    assert "DecompressionBomb" not in capsys.readouterr().err


def test_pixel_limit_replaces_pil_bomb_check(tmp_path, monkeypatch):
    """--max-pixels above PIL's own limit is honoured, with no DecompressionBomb warning."""
    path = str(tmp_path / "x.png")
    Image.new("RGB", (100, 100), (1, 2, 3)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL would raise above 2000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data, reason, _ = prepare.check_image((path, None, None, 20_000))
        assert reason == "" and data == Path(path).read_bytes()
        assert prepare.check_image((path, None, None, 5000))[1] == "too many pixels"
    assert Image.MAX_IMAGE_PIXELS == 1000  # PIL's limit is restored for other code


# -- errors the user fixes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra,error,match",
    [
        (["--max-pixels", "0"], ConfigError, "--max-pixels must be a positive number"),
        (["--max-caption-chars", "-1"], ConfigError, "--max-caption-chars must be"),
        (["--max-side", "0"], ConfigError, "--max-side must be"),
        (["--workers", "-2"], ConfigError, "--workers must be 0"),
    ],
)
def test_bad_flag_values_are_refused(tmp_path, extra, error, match):
    manifest, _ = write_manifest_corpus(tmp_path / "src", n_per_class=1)
    with pytest.raises(error, match=match):
        _prepare(["--manifest", manifest], "x", tmp_path / "d", *extra)
    assert not (tmp_path / "d").exists()  # refused before any work


def test_missing_inputs_and_no_usable_examples(tmp_path, capsys):
    with pytest.raises(DataError, match="manifest .* does not exist"):
        _prepare(["--manifest", str(tmp_path / "nope.jsonl")], "x", tmp_path / "d")
    with pytest.raises(DataError, match="folder .* does not exist"):
        _prepare(["--from-folder", str(tmp_path / "nope")], "x", tmp_path / "d")
    with pytest.raises(DataError, match="no tar shards match"):
        _prepare(["--from-webdataset", str(tmp_path / "*.tar")], "x", tmp_path / "d")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"image": "gone.jpg", "caption": "x"}\n{not json\n\xff\n')
    with pytest.raises(DataError, match="no usable examples") as e:
        _prepare(["--manifest", str(bad)], "x", tmp_path / "d")
    assert "bad.jsonl:3: not utf-8" in str(e.value) and "missing file" in str(e.value)
    # One split with good examples, one whose every image is skipped: tfds cannot write it.
    manifest, _ = write_manifest_corpus(tmp_path / "src", n_per_class=2)
    _append(manifest, json.dumps(dict(image="gone.jpg", caption="x", split="val")).encode())
    with pytest.raises(DataError, match="(?s)no usable examples in split 'val'.*gone.jpg"):
        _prepare(["--manifest", manifest], "x", tmp_path / "d")
    assert not [p for p in os.listdir(tmp_path / "d") if p.startswith(".")]
    # Through `vljax`: the message and the data exit code, no traceback.
    code = cli.main(
        ["prepare", "--manifest", str(bad), "--name", "x", "--data-dir", str(tmp_path / "d")]
    )
    err = capsys.readouterr().err
    assert code == EXIT_DATA and "no usable examples" in err and "Traceback" not in err
