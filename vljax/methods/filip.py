"""FILIP (Yao et al. 2021, arXiv 2111.07783): CLIP's towers trained and scored by token-wise
late interaction: each image patch finds its best word and each word its best patch
(`vljax.losses.filip_loss`, the term "filip"). Retrieval and zero-shot use the same
similarity: image->text ranks by s_i2t, text->image by s_t2i. No export format: Hugging
Face has no late-interaction CLIP model.
"""

import jax
import jax.numpy as jnp
import numpy as np

from vljax.losses.filip import late_interaction_scores
from vljax.methods import clip
from vljax.methods.method import Method, model_builder, scored_in_blocks
from vljax.models.late_interaction import LateInteraction

# Evals score [images, texts, Np, Nt] in blocks of at most this many float32 elements.
_EVAL_BLOCK = 2**26


build_model = model_builder(LateInteraction)


_scores = jax.jit(late_interaction_scores)


def late_interaction_similarity(image_emb, text_emb, direction="img2txt"):
    """{"tokens": [N, Np, D]} x {"tokens": [M, Nt, D], "mask": [M, Nt]} -> float32 [N, M]:
    s_i2t when images query ("img2txt"), s_t2i when texts do ("txt2img").

    Texts are scored in fixed-size blocks (the last one padded with empty texts), so the
    jitted scorer compiles once per image count."""
    x = jnp.asarray(image_emb["tokens"])
    y, m = np.asarray(text_emb["tokens"]), np.asarray(text_emb["mask"], bool)
    n, n_img = x.shape[:2]
    texts, n_txt = y.shape[:2]
    block = max(1, min(texts, _EVAL_BLOCK // max(1, n * n_img * n_txt)))
    which = 0 if direction == "img2txt" else 1
    return scored_in_blocks(lambda yb, mb: _scores(x, yb, mb)[which], (y, m), block, n)


METHOD = Method(
    name="filip",
    build_model=build_model,
    example_batch=clip.example_batch,
    batch_fields=("image", "tokens"),
    default_terms={"filip": 1.0},
    similarity=late_interaction_similarity,
    prompt_ensemble="score",
    rng_purposes=("mask",),  # FLIP's patch dropout, if model.image.mask_ratio > 0
    export_formats=(),
)
