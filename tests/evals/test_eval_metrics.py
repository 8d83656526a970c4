"""Metrics against brute-force pure-Python loops."""

import numpy as np
import pytest

from vljax.evals import metrics
from vljax.evals.metrics import (
    class_embeddings,
    retrieval_recall,
    zeroshot_top1,
    zeroshot_top5,
    zeroshot_topk,
)
from vljax.evals.templates import default_templates


def dot(a, b):
    return sum(float(x) * float(y) for x, y in zip(a, b))


def brute_recall(img, txt, k):
    n = len(img)
    t2i = i2t = 0
    for i in range(n):
        # Text i as the query: images that beat image i strictly.
        better = sum(1 for j in range(n) if j != i and dot(txt[i], img[j]) > dot(txt[i], img[i]))
        t2i += better < k
        better = sum(1 for j in range(n) if j != i and dot(img[i], txt[j]) > dot(img[i], txt[i]))
        i2t += better < k
    return t2i / n, i2t / n


def small_int_embeddings(rng, n, d):
    # Small integers make exact ties common, which exercises the tie rule.
    return rng.integers(-2, 3, size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("chunk", [1024, 3])
def test_retrieval_recall_matches_brute_force(monkeypatch, chunk):
    monkeypatch.setattr(metrics, "_CHUNK", chunk)
    rng = np.random.default_rng(0)
    img = small_int_embeddings(rng, 23, 3)
    txt = img + small_int_embeddings(rng, 23, 3) * 0.5
    got = retrieval_recall(img, txt, ks=(1, 2, 5, 10))
    assert set(got) == {f"{d}_r{k}" for d in ("txt2img", "img2txt") for k in (1, 2, 5, 10)}
    for k in (1, 2, 5, 10):
        t2i, i2t = brute_recall(img.tolist(), txt.tolist(), k)
        assert got[f"txt2img_r{k}"] == pytest.approx(t2i)
        assert got[f"img2txt_r{k}"] == pytest.approx(i2t)


def test_retrieval_ties_and_direction():
    # Identical embeddings: every item ties with the right one, nothing is strictly higher.
    same = np.ones((4, 2), np.float32)
    assert retrieval_recall(same, same, ks=(1,)) == {"txt2img_r1": 1.0, "img2txt_r1": 1.0}
    # Asymmetric case: image 1 scores higher than image 0 for text 0 -> text 0 misses at r1;
    # image 0's best text is text 0 -> img2txt hits.
    img = np.array([[1.0, 0.0], [2.0, 0.0]], np.float32)
    txt = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    got = retrieval_recall(img, txt, ks=(1,))
    t2i, i2t = brute_recall(img.tolist(), txt.tolist(), 1)
    assert (got["txt2img_r1"], got["img2txt_r1"]) == (t2i, i2t) == (0.5, 0.5)
    with pytest.raises(ValueError):
        retrieval_recall(img, txt[:1])


def brute_topk(img, cls, labels, k):
    hits = 0
    for x, y in zip(img, labels):
        scores = [dot(x, c) for c in cls]
        better = sum(1 for s in scores if s > scores[y])
        hits += better < k
    return hits / len(labels)


@pytest.mark.parametrize("chunk", [1024, 4])
def test_zeroshot_matches_brute_force(monkeypatch, chunk):
    monkeypatch.setattr(metrics, "_CHUNK", chunk)
    rng = np.random.default_rng(1)
    img = small_int_embeddings(rng, 30, 4)
    cls = small_int_embeddings(rng, 9, 4)
    labels = rng.integers(0, 9, size=30)
    assert zeroshot_top1(img, cls, labels) == pytest.approx(brute_topk(img, cls, labels, 1))
    assert zeroshot_top5(img, cls, labels) == pytest.approx(brute_topk(img, cls, labels, 5))
    assert zeroshot_topk(img, cls, labels, 9) == 1.0
    # Perfect classifier: images are their class embeddings (distinct unit vectors).
    eye = np.eye(5, dtype=np.float32)
    assert zeroshot_top1(eye[[3, 1, 4]], eye, [3, 1, 4]) == 1.0
    assert zeroshot_top1(eye[[3, 1, 4]], eye, [0, 0, 0]) == 0.0


def test_class_embeddings_average_then_renormalise():
    rng = np.random.default_rng(2)
    vocab = {}

    def fake_embed(text):
        if text not in vocab:
            vocab[text] = rng.normal(size=3) * rng.uniform(0.5, 5)
        return vocab[text]

    calls = []

    def encode_texts(texts):
        calls.append(len(texts))
        return np.stack([fake_embed(t) for t in texts])

    classnames = ["cat", "dog", "red circle"]
    templates = ["a photo of a {}.", "{}"]
    got = class_embeddings(encode_texts, classnames, templates, batch_size=4)
    assert calls == [4, 2]
    assert got.shape == (3, 3) and got.dtype == np.float32
    for c, name in enumerate(classnames):
        acc = [0.0, 0.0, 0.0]
        for t in templates:
            v = [float(x) for x in fake_embed(t.format(name))]
            norm = sum(x * x for x in v) ** 0.5
            acc = [a + x / norm / len(templates) for a, x in zip(acc, v)]
        norm = sum(a * a for a in acc) ** 0.5
        np.testing.assert_allclose(got[c], [a / norm for a in acc], rtol=1e-5)


def test_default_templates():
    en = default_templates("en")
    zh = default_templates("zh")
    for want in ("a photo of a {}.", "a picture of a {}.", "an image of a {}.", "{}"):
        assert want in en
    for want in ("一张{}的照片。", "{}的图片。", "{}"):
        assert want in zh
    assert all(t.count("{}") == 1 for t in en + zh)
    en.append("mutated")
    assert "mutated" not in default_templates("en")
    with pytest.raises(ValueError, match="lang"):
        default_templates("fr")
