"""DBNorm (vljax/evals/dbnorm.py): the dual inverted softmaxes against the paper's formulas
written out here in float64 loops, hub occurrence by hand, a hub that DBNorm dethrones, and
the retrieval eval's `dbnorm` option (keys, bad values, banks that overlap the test pairs)."""

import dataclasses
import math
import zlib

import ml_collections
import numpy as np
import pytest

from vljax.config import load_config
from vljax.data.shapes import ShapesSource
from vljax.errors import ConfigError
from vljax.evals import dbnorm
from vljax.evals.metrics import ranks_of_labels
from vljax.evals.run import run_evals
from vljax.inference import Encoder
from vljax.methods import get_method


def reference_dis(s, sq, sg, b1, b2):
    """One entry at a time: DIS(q, g) = exp(b1 s(q,g)) / sum_q' exp(b1 s(q',g))
    * exp(b2 s(q,g)) / sum_g' exp(b2 s(g',g))."""
    out = np.zeros(s.shape)
    for q in range(s.shape[0]):
        for g in range(s.shape[1]):
            by_queries = sum(math.exp(b1 * sq[j, g]) for j in range(sq.shape[0]))
            by_gallery = sum(math.exp(b2 * sg[j, g]) for j in range(sg.shape[0]))
            out[q, g] = math.exp(b1 * s[q, g]) / by_queries * math.exp(b2 * s[q, g]) / by_gallery
    return out


def reference_activation(sq, sg, k):
    active = set()
    for bank in (sq, sg):
        for row in bank:
            order = sorted(range(len(row)), key=lambda g, row=row: (-row[g], g))
            active.update(order[:k])
    return active


def random_scores(rng, q=5, g=7, bq=4, bg=6):
    # Cosine-like values in [-1, 1], float32 as the encoders give them.
    shapes = ((q, g), (bq, g), (bg, g))
    return [rng.uniform(-1, 1, size=shape).astype(np.float32) for shape in shapes]


@pytest.mark.parametrize("betas", [{}, dict(beta_query=2.0, beta_gallery=0.7)])
def test_dual_inverted_softmax_matches_formula(betas):
    rng = np.random.default_rng(0)
    for _ in range(3):
        s, sq, sg = random_scores(rng)
        b1 = betas.get("beta_query", 1 / 1.99)
        b2 = betas.get("beta_gallery", 3.0)
        want = reference_dis(*(x.astype(np.float64) for x in (s, sq, sg)), b1, b2)
        got = dbnorm.dual_inverted_softmax(s, sq, sg, **betas)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, np.log(want), rtol=1e-12, atol=1e-12)


def test_dual_inverted_softmax_large_beta_does_not_overflow():
    rng = np.random.default_rng(1)
    s, sq, sg = random_scores(rng)
    got = dbnorm.dual_inverted_softmax(s, sq, sg, beta_query=2000.0, beta_gallery=2000.0)
    assert np.all(np.isfinite(got))  # exp(2000) alone overflows float64


@pytest.mark.parametrize("top_k", [1, 2])
def test_dual_dynamic_inverted_softmax_matches_formula(top_k):
    rng = np.random.default_rng(2)
    rescored_rows = plain_rows = 0
    for _ in range(6):
        s, sq, sg = random_scores(rng, q=8, g=9, bq=3, bg=2)
        s64, sq64, sg64 = (x.astype(np.float64) for x in (s, sq, sg))
        active = reference_activation(sq64, sg64, top_k)
        dis = np.log(reference_dis(s64, sq64, sg64, 1 / 1.99, 3.0))
        got = dbnorm.dual_dynamic_inverted_softmax(s, sq, sg, top_k=top_k)
        for q in range(s.shape[0]):
            top1 = max(range(s.shape[1]), key=lambda g, q=q: (s64[q, g], -g))
            if top1 in active:
                np.testing.assert_allclose(got[q], dis[q], rtol=1e-12, atol=1e-12)
                rescored_rows += 1
            else:
                np.testing.assert_array_equal(got[q], s64[q])
                plain_rows += 1
    assert rescored_rows and plain_rows  # both branches were checked


def test_hub_occurrence_by_hand():
    # 6 queries over 150 gallery items: top-1s 0, 0, 0, 5, 5, 7 (query 5 ties 7 and 9: the
    # lower index wins). 1% of 150 -> the 2 most-retrieved items, 0 and 5: 5 of 6 queries.
    scores = np.zeros((6, 150))
    for q, g in enumerate([0, 0, 0, 5, 5, 7]):
        scores[q, g] = 1.0
    scores[5, 9] = 1.0
    assert dbnorm.hub_occurrence(scores) == pytest.approx(5 / 6)
    assert dbnorm.hub_occurrence(scores[:, :100]) == pytest.approx(3 / 6)  # 1% of 100: 1 item
    assert dbnorm.hub_occurrence(scores, fraction=0.02) == pytest.approx(1.0)  # 3 items
    assert dbnorm.hub_occurrence(np.eye(4)) == pytest.approx(1 / 4)  # no hub
    with pytest.raises(ValueError, match="fraction"):
        dbnorm.hub_occurrence(scores, fraction=0)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("normalize", list(dbnorm.NORMALIZERS.values()))
def test_dbnorm_takes_top1_back_from_a_hub(normalize):
    # n gallery items on the axes e_0..e_{n-1} and a hub on e_n. Query i is about item i but
    # sits nearer the hub (0.6 against 0.8), so the hub is everybody's top-1. The held-out
    # banks are about other content and, like the test data, near the hub.
    rng = np.random.default_rng(3)
    n, bank = 20, 30
    eye = np.eye(n + 1)

    def content(m):
        return unit(np.concatenate([rng.normal(size=(m, n)), np.zeros((m, 1))], axis=1))

    gallery = eye  # row n is the hub
    queries = unit(0.6 * eye[:n] + 0.8 * eye[n])
    query_bank = unit(0.6 * content(bank) + 0.8 * eye[n])
    gallery_bank = unit(0.8 * content(bank) + 0.6 * eye[n])
    s = queries @ gallery.T
    rescored = normalize(s, query_bank @ gallery.T, gallery_bank @ gallery.T)
    right = np.arange(n)
    assert np.mean(ranks_of_labels(s, right) == 0) == 0.0
    assert np.mean(ranks_of_labels(rescored, right) == 0) == 1.0
    assert dbnorm.hub_occurrence(s) == 1.0
    assert dbnorm.hub_occurrence(rescored) == pytest.approx(1 / n)


def test_bad_arguments():
    s = np.zeros((3, 4))
    with pytest.raises(ValueError, match="gallery items"):
        dbnorm.dual_inverted_softmax(s, np.zeros((2, 5)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="rows >= 1"):
        dbnorm.dual_dynamic_inverted_softmax(s, np.zeros((0, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="top_k"):
        dbnorm.dual_dynamic_inverted_softmax(s, s, s, top_k=5)


def test_shapes_bank_split_is_held_out():
    test = ShapesSource("retrieval", size=1000, seed=5, image_size=32)
    bank = ShapesSource("retrieval_bank", size=1000, seed=5, image_size=32)
    captions = {test.captions(i)["en"] for i in range(len(test))}
    assert not captions & {bank.captions(i)["en"] for i in range(len(bank))}


@dataclasses.dataclass
class PixelEncoder:
    """Stand-in embeddings: images by a fixed random projection of the pixels, texts by a hash
    of the text; pooled vectors, so both similarities are dot products."""

    method = get_method("clip")

    def encode_images(self, images):
        pixels = np.asarray(images, np.float64).reshape(len(images), -1)
        return unit(pixels @ np.random.default_rng(0).normal(size=(pixels.shape[1], 16)))

    def encode_texts(self, texts):
        rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=16) for t in texts]
        return unit(np.stack(rows))

    def similarity(self, a, b, direction="img2txt"):
        return np.asarray(a) @ np.asarray(b).T

    def same_modality_similarity(self, a, b):
        return np.asarray(a) @ np.asarray(b).T


DBNORM_KEYS = {
    f"retrieval/shapes/{d}_{m}"
    for d in ("txt2img", "img2txt")
    for m in ("r1_dbnorm", "r5_dbnorm", "r10_dbnorm", "hubness", "hubness_dbnorm")
}


def evals_config(**dbnorm_option):
    config = load_config("configs/demo.py")
    entry = dict(type="retrieval", dataset="shapes:retrieval", size=12, key="shapes")
    if dbnorm_option:
        entry["dbnorm"] = dbnorm_option
    config.evals = ml_collections.ConfigDict({"ret": entry})
    return config


@pytest.mark.parametrize("method", ["dis", "ddis"])
def test_eval_reports_dbnorm_keys_only_when_set(method):
    plain = run_evals(evals_config(), PixelEncoder(), step=0)
    assert not DBNORM_KEYS & set(plain)
    option = dict(bank="shapes:retrieval_bank", size=16, method=method)
    results = run_evals(evals_config(**option), PixelEncoder(), step=0)
    assert DBNORM_KEYS <= set(results)
    assert {k: v for k, v in results.items() if k in plain} == plain  # plain keys unchanged
    assert all(0 <= results[k] <= 1 for k in DBNORM_KEYS)


@pytest.mark.parametrize(
    "option, match",
    [
        (dict(bank="shapes:retrieval_bank", method="qb"), r"expected dis \| ddis"),
        (dict(bank="shapes:retrieval_bank", beta=1.0), r"unknown keys \['beta'\]"),
        (dict(method="dis"), "needs 'bank'"),
        (dict(bank="shapes:retrieval_bank", size=0), "positive integer"),
        (dict(bank="shapes:retrieval", size=16), "shares 12 images and 12 captions"),
    ],
)
def test_eval_refuses_bad_options(option, match):
    with pytest.raises(ConfigError, match=match):
        run_evals(evals_config(**option), PixelEncoder(), step=0)


def test_method_without_same_modality_similarity_is_refused():
    encoder = Encoder(get_method("filip"), None, None, None, None)
    with pytest.raises(ConfigError, match="same-modality similarity"):
        encoder.same_modality_similarity(np.zeros((1, 2)), np.zeros((1, 2)))
