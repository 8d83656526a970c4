"""The third_modality eval (vljax/evals/third_modality.py) against a numpy computation on
hand-made embeddings: each run scored by the rule of its own objective through the method
seam (Symile: MIP; the pairwise baseline: the sum of cosines), both rules for both, one
modality missing, and shared ties."""

import ml_collections
import numpy as np

from vljax.evals.third_modality import third_modality_eval, top1_accuracy
from vljax.methods import get_method


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class FakeEncoder:
    """Hands out fixed embeddings (image i is index i + 1; index 0 is the black placeholder
    image, and "" the empty caption) and scores through the symile method's hook, as the
    Encoder does with its run's loss config."""

    def __init__(self, img, txt, cand, blank_img, blank_txt, terms):
        self.img = np.concatenate([blank_img[None], img])
        self.txt, self.cand, self.blank_txt = txt, cand, blank_txt
        self.loss = ml_collections.ConfigDict(dict(terms=terms))
        self.method = get_method("symile")

    def encode_images(self, images):
        return self.img[np.asarray(images)]

    def encode_texts(self, captions):
        return np.stack([self.blank_txt if c == "" else self.txt[c] for c in captions])

    def encode_third(self, tokens):
        return self.cand

    def score_third(self, img, txt, cand):
        return self.method.score_third(img, txt, cand, self.loss)


def _reference_top1(scores, labels):
    """Accuracy with shared ties, row by row."""
    total = 0.0
    for row, label in zip(scores, labels, strict=True):
        best = [j for j in range(len(row)) if row[j] == max(row)]
        total += (label in best) / len(best)
    return total / len(labels)


def test_each_rule_and_missing_modalities_against_numpy():
    rng = np.random.default_rng(0)
    n, c, d = 40, 6, 8
    img, txt = _unit(rng.normal(size=(n, d))), _unit(rng.normal(size=(n, d)))
    cand = _unit(rng.normal(size=(c, d)))
    blank_img, blank_txt = _unit(rng.normal(size=d)), _unit(rng.normal(size=d))
    labels = rng.integers(0, c, n)
    mip = np.einsum("nd,nd,cd->nc", img, txt, cand)
    # Make the MIP rule right on the first 30 rows, whatever the pairwise rule says.
    labels[:30] = mip[:30].argmax(1)
    pair = img @ cand.T + txt @ cand.T
    data = dict(
        images=np.arange(1, n + 1), captions=list(range(n)), labels=labels, candidate_tokens=None
    )
    for terms in ({"symile": 1.0}, {"pairwise": 1.0}):
        # The run's rule, with a missing modality's placeholder embedding in its place.
        if "symile" in terms:
            own = lambda a, b: np.einsum("nd,nd,cd->nc", a, b, cand)
        else:
            own = lambda a, b: a @ cand.T + b @ cand.T
        encoder = FakeEncoder(img, txt, cand, blank_img, blank_txt, terms)
        got = third_modality_eval("k", encoder, data)
        want = {
            "top1": _reference_top1(own(img, txt), labels),
            "top1_mip": _reference_top1(mip, labels),
            "top1_pairwise": _reference_top1(pair, labels),
            "top1_image_only": _reference_top1(own(img, np.tile(blank_txt, (n, 1))), labels),
            "top1_caption_only": _reference_top1(own(np.tile(blank_img, (n, 1)), txt), labels),
        }
        assert set(got) == {f"third_modality/k/{name}" for name in want}
        for name, value in want.items():
            np.testing.assert_allclose(got[f"third_modality/k/{name}"], value, atol=1e-6)
    assert _reference_top1(mip, labels) >= 0.75 > _reference_top1(pair, labels)


def test_ties_are_shared_so_constant_scores_are_at_chance():
    labels = np.array([0, 1, 2, 3, 4, 5])
    assert top1_accuracy(np.zeros((6, 6)), labels) == 1 / 6
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    assert top1_accuracy(scores, [1, 1, 1]) == (0.5 + 1 + 0) / 3
