"""CoCa (Yu et al. 2022, arXiv 2205.01917): contrastive captioners. Attentional poolers on the
image tokens; a causal text decoder whose appended CLS token gives the contrastive text
embedding; a multimodal decoder that cross-attends to the image and predicts the caption.
Loss = contrastive weight x contrastive + caption weight x token cross-entropy. Greedy
captions for `vljax caption` and the captioning eval. No export format: Hugging Face has no
CoCa model.
"""

from vljax.methods import clip
from vljax.methods.method import Method, dot_similarity, model_builder
from vljax.models.coca import CoCa, greedy_decode

build_model = model_builder(CoCa)


METHOD = Method(
    name="coca",
    build_model=build_model,
    example_batch=clip.example_batch,
    batch_fields=("image", "tokens"),
    default_terms={"contrastive": 1.0, "caption": 2.0},  # the paper's weights (1 and 2)
    similarity=dot_similarity,
    same_modality_similarity=dot_similarity,
    decode_captions=greedy_decode,
    rng_purposes=("mask",),  # FLIP's patch dropout, if model.image.mask_ratio > 0
    export_formats=(),
)
