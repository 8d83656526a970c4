"""Retrieval with several captions per image (the COCO / Flickr30k protocol) against brute
force, and one-caption eval sets scored as before."""

import ml_collections
import numpy as np
import pytest
from test_multilingual_retrieval import HashEncoder

from vljax.config import load_config
from vljax.data.evalsets import load_eval_set
from vljax.evals import metrics
from vljax.evals.run import run_evals


def brute_ranks(img, txt, text_image):
    sims = img @ txt.T
    t2i = [int(np.sum(sims[:, m] > sims[text_image[m], m])) for m in range(len(txt))]
    i2t = []
    for n in range(len(img)):
        own = [m for m in range(len(txt)) if text_image[m] == n]
        i2t.append(min(int(np.sum(sims[n] > sims[n, m])) for m in own))
    return np.array(t2i), np.array(i2t)


@pytest.mark.parametrize("chunk", [1024, 2])
def test_several_captions_match_brute_force(monkeypatch, chunk):
    monkeypatch.setattr(metrics, "_CHUNK", chunk)
    rng = np.random.default_rng(0)
    img = rng.integers(-2, 3, size=(5, 3)).astype(np.float32)  # small integers: ties
    text_image = np.array([0, 0, 1, 2, 2, 2, 2, 3, 4, 4, 1])
    txt = img[text_image] + rng.integers(-2, 3, size=(11, 3)).astype(np.float32)
    got = metrics.retrieval_metrics(img, txt, text_image)
    t2i, i2t = brute_ranks(img, txt, text_image)
    for k in (1, 5, 10):
        assert got[f"txt2img_r{k}"] == pytest.approx(np.mean(t2i < k))
        assert got[f"img2txt_r{k}"] == pytest.approx(np.mean(i2t < k))
    assert got["txt2img_medr"] == np.floor(np.median(t2i)) + 1
    assert got["img2txt_medr"] == np.floor(np.median(i2t)) + 1
    with pytest.raises(ValueError, match="every image needs at least one text"):
        metrics.retrieval_ranks(img, txt[:2], text_image[:2])


def test_median_rank_is_one_based():
    assert metrics.median_rank([0, 3, 5, 1, 9]) == 4.0  # median 0-based rank 3
    assert metrics.median_rank([0, 1, 4, 5]) == 3.0  # median 2.5 -> floor 2 -> rank 3
    assert metrics.median_rank([0, 0, 7]) == 1.0


def test_flatten_captions():
    texts, text_image = metrics.flatten_captions([["a", "b"], ["c"], ["d", "e", "f"]])
    assert texts == list("abcdef") and text_image.tolist() == [0, 0, 1, 2, 2, 2]


def test_one_caption_set_scores_as_before():
    """shapes:retrieval has one caption per image: text i against image i, as before."""
    config = load_config("configs/demo.py")
    entry = dict(type="retrieval", dataset="shapes:retrieval", size=12)
    config.evals = ml_collections.ConfigDict({"r": entry})
    encoder = HashEncoder()
    results = run_evals(config, encoder, step=0)
    data = load_eval_set(entry, config)
    img, txt = encoder.encode_images(data["images"]), encoder.encode_texts(data["captions"])
    sims = img @ txt.T
    diag = np.diag(sims)
    t2i = np.sum(sims > diag[None, :], axis=0)  # images above image i for text i
    i2t = np.sum(sims > diag[:, None], axis=1)  # texts above text i for image i
    for k in (1, 5, 10):
        assert results[f"retrieval/r/txt2img_r{k}"] == np.mean(t2i < k)
        assert results[f"retrieval/r/img2txt_r{k}"] == np.mean(i2t < k)
    assert results["retrieval/r/txt2img_medr"] == np.floor(np.median(t2i)) + 1
    assert 0 < results["retrieval/r/txt2img_r1"] < 1  # not vacuous
