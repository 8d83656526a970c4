"""Symile's demo data (vljax/data/shapes_symile.py) and third modality
(vljax/data/third_modality.py): the third is (colour + shift) mod 6 and nothing less
determines it (pairs independent, counted), the image shows the colour, the spelling, and
missing modalities blanked."""

import numpy as np
import pytest

from vljax.data.shapes_symile import ShapesSymileSource, symile_test_set
from vljax.data.third_modality import MODALITIES, ThirdModality, spell
from vljax.errors import ConfigError, DataError

# Independent references: what a person calls each colour, in the data's order, and numbers.
NAMES = ["red", "green", "blue", "yellow", "purple", "orange"]
RGB = [(220, 30, 30), (30, 180, 50), (40, 80, 240), (245, 225, 30), (150, 50, 210), (255, 135, 0)]
WORDS = ["zero", "one", "two", "three", "four", "five"]


def test_the_third_is_the_shifted_colour_and_the_image_shows_the_colour():
    src = ShapesSymileSource("train", 60, seed=3, image_size=32)
    for i in range(60):
        ex = src[i]
        c, k = ex["colour"], ex["shift"]
        assert ex["captions"] == {"en": f"shift by {WORDS[k]}"}
        assert ex["third"] == NAMES[(c + k) % 6] and ex["label"] == (c + k) % 6
        img = ex["image"].astype(int)
        assert img.shape == (32, 32, 3)
        # The pixels nearest the reference colour c are the shape's: some of them, and closer
        # to c than to any other reference colour.
        dist = np.abs(img[..., None, :] - np.array(RGB)).sum(-1)  # [H, W, 6]
        shape_px = dist.min(-1) < 60
        assert shape_px.sum() >= 9
        assert np.bincount(dist[shape_px].argmin(-1), minlength=6).argmax() == c


def _chi2(a, b):
    counts = np.zeros((6, 6))
    np.add.at(counts, (a, b), 1)
    expected = counts.sum(1, keepdims=True) * counts.sum(0, keepdims=True) / counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_every_pair_is_independent_and_only_the_triple_determines_the_third():
    src = ShapesSymileSource("train", 4000, seed=0)
    c, k = np.array([src.colour_and_shift(i) for i in range(len(src))]).T
    t = (c + k) % 6
    # 25 degrees of freedom: chi2 > 52.6 has p < 0.001 under independence.
    for a, b in ((c, k), (c, t), (k, t)):
        assert _chi2(a, b) < 52.6
    # Each value of one modality leaves the third near uniform (no pair predicts it)...
    for given in (c, k):
        for v in range(6):
            share = np.bincount(t[given == v], minlength=6) / np.sum(given == v)
            assert share.max() < 0.25
    # ... while the pair determines it: one third per (c, k).
    assert len(set(zip(c, k, t))) == len(set(zip(c, k)))


def test_the_test_split_holds_every_pair_equally_and_differs_from_train():
    data = symile_test_set(32, 72, seed=5, third_max_len=8, third_vocab=32)
    assert data["candidates"] == NAMES
    src = ShapesSymileSource("test", 72, seed=5, image_size=32)
    pairs = [src.colour_and_shift(i) for i in range(72)]
    assert sorted(pairs) == sorted([(c, k) for c in range(6) for k in range(6)] * 2)
    assert [data["labels"][i] for i in range(72)] == [(c + k) % 6 for c, k in pairs]
    train = ShapesSymileSource("train", 72, seed=5, image_size=32)
    assert not np.array_equal(train[0]["image"], data["images"][0])
    with pytest.raises(IndexError):
        src[72]


def test_spelling_letters_then_eos_then_padding():
    got = spell(["red", "orange"], max_len=8, vocab_size=29)
    # a -> 3, ..., z -> 28; EOS 1, PAD 0.
    want = [[20, 7, 6, 1, 0, 0, 0, 0], [17, 20, 3, 16, 9, 7, 1, 0]]
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ConfigError, match="model.third.max_len=7"):
        spell(["orange"], max_len=6, vocab_size=29)
    with pytest.raises(ConfigError, match="model.third.vocab_size=29"):
        spell(["red"], max_len=8, vocab_size=16)
    with pytest.raises(DataError, match="letters a-z"):
        spell(["Red"], max_len=8, vocab_size=29)


class _Inner:
    """Stands for the pipeline's TrainTransform: passes the example's image and a fixed
    token row."""

    def random_map(self, element, rng):
        return dict(image=element["image"], tokens=np.array([5, 6, 1, 0], np.int32))


def test_missing_modalities_are_blanked():
    src = ShapesSymileSource("train", 400, seed=1, image_size=32)
    transform = ThirdModality(_Inner(), max_len=8, vocab_size=32, missing_prob=0.3)
    rng = np.random.default_rng(0)
    present = np.zeros((400, 3), bool)
    for i in range(400):
        out = transform.random_map(src[i], rng)
        full = dict(
            image=src[i]["image"],
            tokens=[5, 6, 1, 0],
            third_tokens=spell([src[i]["third"]], 8, 32)[0],
        )
        for m, name in enumerate(MODALITIES):
            present[i, m] = np.array_equal(out[name], full[name])
            if present[i, m]:
                continue
            if name == "image":
                assert not out[name].any()
            else:  # the empty sequence: EOS alone
                assert out[name][0] == 1 and not out[name][1:].any()
    share = present.mean(axis=0)
    assert np.all(np.abs(share - 0.7) < 0.06), share  # each modality present w.p. 0.7
    # Independently of each other: all three present w.p. 0.7 ** 3.
    assert abs(present.all(axis=1).mean() - 0.343) < 0.06
    complete = ThirdModality(_Inner(), 8, 32, missing_prob=0.0)
    out = complete.random_map(src[0], rng)
    assert out["image"].any() and out["third_tokens"][1] != 1


def test_bad_missing_prob_and_a_dataset_without_a_third_are_refused():
    with pytest.raises(ConfigError, match="missing_prob"):
        ThirdModality(_Inner(), 8, 32, missing_prob=1.0)
    transform = ThirdModality(_Inner(), 8, 32, missing_prob=0.0)
    with pytest.raises(DataError, match="shapes_symile"):
        transform.random_map(dict(image=np.zeros((4, 4, 3), np.uint8)), np.random.default_rng())
