"""Mean Rank Variance (vljax/evals/mrv.py): a hand-computed example, the per-language rank
helpers against brute-force loops, bad arguments."""

import numpy as np
import pytest

from vljax.evals import metrics
from vljax.evals.mrv import image_to_text_ranks, mean_rank_variance, text_to_image_ranks


def test_mean_rank_variance_by_hand():
    # K = 3 languages, N = 4 instances: column n holds instance n's rank in each language.
    ranks = [
        [0, 2, 1, 5],
        [0, 4, 1, 1],
        [0, 0, 4, 3],
    ]
    # instance 0: ranks 0, 0, 0 -> mean 0,   variance 0
    # instance 1: ranks 2, 4, 0 -> mean 2,   variance (0 + 4 + 4) / 3 = 8/3
    # instance 2: ranks 1, 1, 4 -> mean 2,   variance (1 + 1 + 4) / 3 = 2
    # instance 3: ranks 5, 1, 3 -> mean 3,   variance (4 + 4 + 0) / 3 = 8/3
    # MRV = (0 + 8/3 + 2 + 8/3) / 4 = (22/3) / 4 = 11/6
    assert mean_rank_variance(np.array(ranks)) == pytest.approx(11 / 6, rel=1e-12)
    assert mean_rank_variance(np.zeros((1, 4), int)) == 0.0  # one language: no variance
    assert mean_rank_variance([[3, 1], [3, 1]]) == 0.0  # languages agree


def test_mean_rank_variance_bad_arguments():
    for ranks, match in [
        (np.zeros(4, int), r"\[K, N\]"),
        (np.zeros((2, 0), int), r"\[K, N\]"),
        (np.zeros((2, 3)), "integers"),
        (-np.ones((2, 3), int), ">= 0"),
    ]:
        with pytest.raises(ValueError, match=match):
            mean_rank_variance(ranks)


def brute_force(img, txts, by_text):
    """Rank of the right item for every language and query, one pair at a time."""
    out = np.zeros((len(txts), len(img)), np.int64)
    for k, txt in enumerate(txts):
        for q in range(len(img)):
            if by_text:  # text q against every image
                right = float(np.dot(img[q], txt[q]))
                wrong = [float(np.dot(img[j], txt[q])) for j in range(len(img)) if j != q]
            else:  # image q against every text of language k
                right = float(np.dot(img[q], txt[q]))
                wrong = [float(np.dot(img[q], txt[j])) for j in range(len(txt)) if j != q]
            out[k, q] = sum(w > right for w in wrong)
    return out


def test_rank_helpers_match_brute_force(monkeypatch):
    rng = np.random.default_rng(0)
    n, dim = 37, 6
    img = rng.normal(size=(n, dim)).astype(np.float32)
    # Captions get noisier language by language; integer-valued ties in one language.
    txts = {
        "en": img + 0.3 * rng.normal(size=(n, dim)),
        "de": img + 1.0 * rng.normal(size=(n, dim)),
        "ja": img + 3.0 * rng.normal(size=(n, dim)),
        "ties": np.round(rng.normal(size=(n, dim))),
    }
    txts = {k: v.astype(np.float32) for k, v in txts.items()}
    img_ties = np.round(img)  # small integer dot products: ties are exact
    monkeypatch.setattr(metrics, "_CHUNK", 8)  # several similarity chunks per language
    for im in (img, img_ties):
        t2i = text_to_image_ranks(im, txts, metrics.dot)
        i2t = image_to_text_ranks(im, txts)
        assert t2i.shape == i2t.shape == (4, n)
        np.testing.assert_array_equal(t2i, brute_force(im, list(txts.values()), True))
        np.testing.assert_array_equal(i2t, brute_force(im, list(txts.values()), False))
        assert mean_rank_variance(t2i) == pytest.approx(np.mean(np.var(t2i, axis=0)))
    assert np.any(t2i != t2i[0])  # the languages disagree somewhere


def test_direction_is_passed_to_similarity():
    seen = []

    def sim(a, b, direction):
        seen.append(direction)
        return metrics.dot(a, b)

    x = np.eye(3, dtype=np.float32)
    assert not text_to_image_ranks(x, {"en": x}, sim).any()
    assert not image_to_text_ranks(x, {"en": x}, sim).any()
    assert set(seen) == {"txt2img", "img2txt"}


def test_rank_helpers_bad_arguments():
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="non-empty dict"):
        text_to_image_ranks(x, {})
    with pytest.raises(ValueError, match="'de' has 2"):
        image_to_text_ranks(x, {"en": x, "de": x[:2]})
