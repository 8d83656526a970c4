"""The `third_modality` eval (Symile): predict each held-out example's third modality from
its image and caption.

For every (image, caption) pair every candidate third (the `candidates` of the eval set,
e.g. the 6 colour names of `shapes_symile:test`) is scored, through the method seam, by the
rule of the run's objective (`Method.score_third`: MIP for Symile, the sum of the pairwise
cosines for the pairwise baseline); the best-scoring candidate is the prediction. Keys:

- `third_modality/<key>/top1`: accuracy by the run's own rule;
- `.../top1_mip`, `.../top1_pairwise`: by the MIP rule and by the pairwise rule, whatever the
  run trained (the same embeddings scored both ways);
- `.../top1_image_only`, `.../top1_caption_only`: by the run's rule with the caption (the
  image) missing, i.e. replaced, as in training with `data.train.missing_prob`
  (vljax/data/third_modality.py), by the blank placeholder (an empty caption, a black
  image) and its tower's embedding of it. On `shapes_symile:test` one modality says nothing
  about the third, so these are at chance whatever the model.

Ties are shared: a row whose true candidate ties with t - 1 others counts 1/t, so a model that
scores every candidate alike is at chance (1/C), not right.
"""

import numpy as np

from vljax.methods.method import mip_scores, pairwise_sum_scores


def top1_accuracy(scores, labels) -> float:
    """Mean over rows of [N, C] `scores` of 1/t when the true candidate `labels[n]` is among
    the t best (ties), else 0."""
    scores = np.asarray(scores)
    labels = np.asarray(labels, np.int64)
    if scores.ndim != 2 or len(labels) != len(scores):
        raise ValueError(f"need scores [N, C] and N labels; got {scores.shape} and {len(labels)}")
    best = scores.max(axis=1, keepdims=True)
    at_best = scores == best
    right = at_best[np.arange(len(labels)), labels]
    return float(np.mean(right / at_best.sum(axis=1)))


def third_modality_eval(key: str, encoder, data) -> dict:
    """See the module docstring. `data`: images, captions, labels, candidate_tokens."""
    images = np.asarray(data["images"])
    img = encoder.encode_images(images)
    txt = encoder.encode_texts(data["captions"])
    cand = encoder.encode_third(data["candidate_tokens"])
    no_img = np.repeat(encoder.encode_images(np.zeros_like(images[:1])), len(img), axis=0)
    no_txt = np.repeat(encoder.encode_texts([""]), len(txt), axis=0)
    labels = data["labels"]
    scores = {
        "top1": encoder.score_third(img, txt, cand),
        "top1_mip": mip_scores([img, txt], cand),
        "top1_pairwise": pairwise_sum_scores([img, txt], cand),
        "top1_image_only": encoder.score_third(img, no_txt, cand),
        "top1_caption_only": encoder.score_third(no_img, txt, cand),
    }
    return {f"third_modality/{key}/{name}": top1_accuracy(s, labels) for name, s in scores.items()}
