"""Several captions per image as positives of one row: CLIP's two towers trained on K
captions per example (batch field `multi_tokens`, `data.train.multi_captions`: one per
language, or the sentences of a long caption).

Terms (vljax/losses/terms.py): `one_to_k` (default; the 1-to-K loss of arXiv 2406.18254,
also DreamLIP's multi-positive sub-captions), `per_caption` (M2-Encoder: each caption against
its image, averaged) and `sampled_caption` (one caption per step, the 1-to-K paper's
baseline). Recipes: configs/m2_encoder.py, configs/one_to_k.py, configs/multi_positive.py.
The params are CLIP's: evals, `vljax.load` and the Hugging Face export are CLIP's.
"""

from vljax.methods import clip
from vljax.methods.method import Method, dot_similarity, model_builder
from vljax.models.multi_caption import MultiCaption

build_model = model_builder(MultiCaption)


def example_batch(model_config, n: int = 1) -> dict:
    """One caption per example: K shapes no parameter (the text tower sees [B * K, L])."""
    batch = clip.example_batch(model_config, n)
    return {"image": batch["image"], "multi_tokens": batch["tokens"][:, None]}


METHOD = Method(
    name="multi_caption",
    build_model=build_model,
    example_batch=example_batch,
    batch_fields=("image", "multi_tokens"),
    default_terms={"one_to_k": 1.0},
    similarity=dot_similarity,
    same_modality_similarity=dot_similarity,
    rng_purposes=("mask",),  # FLIP's patch dropout (model.image.mask_ratio > 0)
    export_formats=("hf", "open_clip"),
)
