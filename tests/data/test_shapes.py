import re

import numpy as np
import pytest

from tests.data.reference_colours import colour_mask
from vljax.config import build_config
from vljax.data import shapes
from vljax.data.shapes import ShapesSource
from vljax.data.tokenizer import Tokenizer, train_tokenizer

OBJ = re.compile(r"a (big|small) (\w+) (circle|square|triangle|cross)")


def test_deterministic_and_split_dependent():
    a, b = ShapesSource("train", 50, seed=1), ShapesSource("train", 50, seed=1)
    for i in (0, 7, 49):
        assert np.array_equal(a[i]["image"], b[i]["image"])
        assert a[i]["captions"] == b[i]["captions"]
    # Element i does not depend on the source size or on the order of access.
    big = ShapesSource("train", 5000, seed=1)
    assert np.array_equal(big[7]["image"], a[7]["image"])
    other_seed = ShapesSource("train", 50, seed=2)
    assert not np.array_equal(other_seed[0]["image"], a[0]["image"])
    zs = ShapesSource("zeroshot", 50, seed=1)
    assert not np.array_equal(zs[0]["image"], a[0]["image"])
    with pytest.raises(IndexError):
        a[50]


def test_element_format():
    ex = ShapesSource("train", 10, seed=0, image_size=48)[3]
    assert ex["image"].shape == (48, 48, 3) and ex["image"].dtype == np.uint8
    assert set(ex["captions"]) == {"en", "zh"}


def _check_shape(mask, shape, size):
    ys, xs = np.nonzero(mask)
    box = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = box.shape
    side = max(h, w)  # at 64 px, big shapes span about 3 ViT patches, small ones about 2
    assert (side >= 19) if size == "big" else (side <= 16), (shape, size, side)
    fill = box.mean()
    top, mid, bottom = box[0].sum(), box[h // 2].sum(), box[-1].sum()
    if shape == "square":
        assert fill > 0.9
    elif shape == "circle":
        assert 0.65 < fill < 0.9 and top < 0.7 * w
    elif shape == "triangle":
        assert bottom >= 0.8 * w and top <= 0.4 * w
    elif shape == "cross":
        assert mid >= 0.8 * w and top <= 0.5 * w and bottom <= 0.5 * w and fill < 0.7
    return xs.mean(), ys.mean()


@pytest.mark.parametrize("split", ["train", "retrieval", "zeroshot"])
def test_captions_are_true(split):
    """Read each named shape back from the pixels: colour, size, shape, and the relation."""
    src = ShapesSource(split, 200, seed=5)
    checked = 0
    for i in range(0, 200, 3):
        ex = src[i]
        en = ex["captions"]["en"]
        objs = OBJ.findall(en)
        assert 1 <= len(objs) <= 3, en
        colours = [c for _, c, _ in objs]
        if len(set(colours)) < len(colours):
            continue  # same colour twice: pixels cannot be told apart by colour
        centres = []
        for size, colour, shape in objs:
            mask = colour_mask(ex["image"], colour)
            centres.append(_check_shape(mask, shape, size))
        if len(objs) > 1:
            horizontal = "left" in en
            assert horizontal != ("above" in en or "top to bottom" in en)
            axis = 0 if horizontal else 1
            coords = [c[axis] for c in centres]
            assert coords == sorted(coords), (en, centres)
        if split == "zeroshot":
            size, colour, shape = objs[0]
            assert shapes.classnames("en")[ex["label"]] == f"{colour} {shape}"
        checked += 1
    assert checked > 30


def test_chinese_captions_match_english():
    src = ShapesSource("train", 100, seed=0)
    zh_colour = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色"}
    zh_colour |= {"purple": "紫色", "orange": "橙色"}
    zh_shape = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "cross": "十字形"}
    for i in range(100):
        c = src[i]["captions"]
        objs = OBJ.findall(c["en"])
        expect = "".join(
            f"一个{'大' if z == 'big' else '小'}的{zh_colour[col]}{zh_shape[s]}"
            for z, col, s in objs
        )
        got = re.sub(r"^(从左到右|从上到下)依次是|在|的(左边|上面)$|、|和", "", c["zh"])
        assert got == expect, c
        if "to the left of" in c["en"]:
            assert c["zh"].endswith("的左边")
        if " above " in c["en"]:
            assert c["zh"].endswith("的上面")


def test_retrieval_captions_distinct():
    src = ShapesSource("retrieval", seed=11)
    assert len(src) == 1000
    for lang in ("en", "zh"):
        caps = [src.captions(i)[lang] for i in range(len(src))]
        assert len(set(caps)) == 1000
    counts = {len(OBJ.findall(src.captions(i)["en"])) for i in range(len(src))}
    assert counts == {1, 2}


def test_classnames():
    en, zh = shapes.classnames("en"), shapes.classnames("zh")
    assert len(en) == len(set(en)) == 24 and len(zh) == len(set(zh)) == 24
    assert en[0] == "red circle" and zh[0] == "红色圆形"
    with pytest.raises(ValueError, match="shapes captions"):
        shapes.classnames("fr")


def test_zeroshot_balanced():
    src = ShapesSource("zeroshot", 240, seed=0)
    labels = [src[i]["label"] for i in range(240)]
    assert np.bincount(labels).tolist() == [10] * 24


def test_english_captions_fit_the_quickstarts_text_positions(tmp_path):
    """`make demo`'s recipe reads 20 text positions: every English caption of the training and
    eval splits is at most 19 pieces of the run's tokenizer (trained as a run trains it) plus
    EOS, so none is cut."""
    config = build_config("configs/demo.py:quickstart")
    train = ShapesSource("train", 3000, 0, 32)
    captions = [train[i]["captions"]["en"] for i in range(len(train))]
    path = tmp_path / "tok.model"
    train_tokenizer(captions, path, vocab_size=config.tokenizer.vocab_size)
    tokenizer = Tokenizer(str(path))
    for split in ("zeroshot", "retrieval"):
        source = ShapesSource(split, 500, 0, 32)
        captions += [source[i]["captions"]["en"] for i in range(len(source))]
    longest = max(len(tokenizer.pieces(c)) for c in captions)
    assert longest + 1 <= config.model.text.max_len, longest
