"""Symile (Saporta et al. 2024, arXiv 2411.01053): contrastive learning over three
modalities with the multilinear inner product MIP(a, b, c) = sum_d a_d b_d c_d, which can
capture information that only the modalities together carry.

Three towers (vljax/models/symile.py): the two-tower model's image and text towers and a
third tower over a token sequence of its own vocabulary (`model.third`). The default term
`symile` (`loss.symile_negatives`); the term
`pairwise` (the mean of the three pairs' CLIP losses) is the baseline on the same model
(configs/symile.py:demo_pairwise). A run is scored by the rule of what it trained
(`score_third`): MIP with the symile term, else the sum of the pairwise cosines.
"""

import jax.numpy as jnp

from vljax.methods import clip
from vljax.methods.method import (
    Method,
    dot_similarity,
    mip_scores,
    model_builder,
    pairwise_sum_scores,
)
from vljax.models.symile import SymileTowers

build_model = model_builder(SymileTowers)


def example_batch(model_config, n: int = 1) -> dict:
    return {
        **clip.example_batch(model_config, n),
        "third_tokens": jnp.zeros((n, model_config.third.max_len), jnp.int32),
    }


def score_third(img_emb, txt_emb, cand_emb, loss_config):
    """MIP when the run trained the symile term; the pairwise baseline (no symile term) is
    scored as pairwise CLIP would be: img . cand + txt . cand."""
    terms = METHOD.default_terms if loss_config is None else METHOD.terms(loss_config)
    rule = mip_scores if "symile" in terms else pairwise_sum_scores
    return rule([img_emb, txt_emb], cand_emb)


METHOD = Method(
    name="symile",
    build_model=build_model,
    example_batch=example_batch,
    batch_fields=("image", "tokens", "third_tokens"),
    default_terms={"symile": 1.0},
    similarity=dot_similarity,  # image-caption retrieval, as for CLIP
    same_modality_similarity=dot_similarity,
    encode_third="encode_third",
    score_third=score_third,
    rng_purposes=("mask",),  # the image tower's patch dropout (model.image.mask_ratio > 0)
)
