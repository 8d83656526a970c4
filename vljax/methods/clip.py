"""CLIP and SigLIP (arXiv 2103.00020, 2303.15343): two towers, one contrastive term on the
pooled embeddings (config.loss.kind softmax | sigmoid). Exports to Hugging Face CLIPModel /
SiglipModel."""

import jax.numpy as jnp

from vljax.methods.method import Method, dot_similarity, model_builder
from vljax.models.two_tower import TwoTower

build_model = model_builder(TwoTower)


def example_batch(model_config, n: int = 1) -> dict:
    size = model_config.image.image_size
    return {
        "image": jnp.zeros((n, size, size, 3), jnp.float32),
        "tokens": jnp.zeros((n, model_config.text.max_len), jnp.int32),
    }


METHOD = Method(
    name="clip",
    build_model=build_model,
    example_batch=example_batch,
    batch_fields=("image", "tokens"),
    default_terms={"contrastive": 1.0},
    similarity=dot_similarity,
    same_modality_similarity=dot_similarity,
    rng_purposes=("mask",),  # FLIP's patch dropout (model.image.mask_ratio > 0)
    export_formats=("hf", "open_clip"),
)
