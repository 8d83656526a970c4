"""A retrieval eval with `langs` reports per-language R@1 and the Mean Rank Variance, computed
here again by brute force from the same embeddings."""

import dataclasses
import zlib

import ml_collections
import numpy as np

from vljax.config import load_config
from vljax.data.evalsets import load_eval_set
from vljax.evals.run import run_evals
from vljax.methods import get_method


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@dataclasses.dataclass
class HashEncoder:
    """Deterministic stand-in embeddings: images from their pixels, texts from a hash of the
    text and the first word (so captions of one image in two languages are related)."""

    method = get_method("clip")

    def encode_images(self, images):
        pixels = np.asarray(images, np.float64).reshape(len(images), -1)
        projection = np.random.default_rng(0).normal(size=(pixels.shape[1], 16))
        return unit_rows(pixels @ projection)

    def encode_texts(self, texts):
        seeds = [zlib.crc32(t.encode()) for t in texts]
        return unit_rows(np.stack([np.random.default_rng(s).normal(size=16) for s in seeds]))

    def similarity(self, a, b, direction="img2txt"):
        return np.asarray(a) @ np.asarray(b).T


def brute_force_ranks(img, txt):
    sims = img @ txt.T  # [images, texts]
    return np.array([np.sum(sims[:, i] > sims[i, i]) for i in range(len(img))])


def test_mrv_and_per_language_recall_match_brute_force():
    config = load_config("configs/demo.py")
    entry = dict(type="retrieval", dataset="shapes:retrieval", size=12, langs=["en", "zh"])
    config.evals = ml_collections.ConfigDict({"ml": entry})
    encoder = HashEncoder()
    results = run_evals(config, encoder, step=0)
    images = load_eval_set({**entry, "lang": "en"}, config)["images"]
    img = encoder.encode_images(images)
    ranks = []
    for lang in ("en", "zh"):
        captions = load_eval_set({**entry, "lang": lang}, config)["captions"]
        r = brute_force_ranks(img, encoder.encode_texts(captions))
        ranks.append(r)
        assert results[f"retrieval/ml/{lang}/txt2img_r1"] == np.mean(r == 0)
    ranks = np.array(ranks, np.float64)
    want = np.mean(((ranks - ranks.mean(axis=0)) ** 2).mean(axis=0))  # variance over languages
    assert abs(results["retrieval/ml/mrv"] - want) < 1e-12
    assert want > 0  # the two languages rank differently here: the check is not vacuous
