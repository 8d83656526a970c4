"""SyCoCa (Ma et al. 2024, arXiv 2401.02137): CoCa with a third, text-guided masked image
modeling (TG-MIM) head that reconstructs the pixels of the patches most relevant to the
caption (attentive masking) from the visible ones and the text. Loss = contrastive +
2 x caption + masked image MSE. Evals, captions and embeddings are CoCa's (no masking outside
training). No export format: Hugging Face has no CoCa model.
"""

from vljax.methods import clip
from vljax.methods.method import Method, dot_similarity, model_builder
from vljax.models.coca import greedy_decode
from vljax.models.sycoca import SyCoCa

build_model = model_builder(SyCoCa)


METHOD = Method(
    name="sycoca",
    build_model=build_model,
    example_batch=clip.example_batch,
    batch_fields=("image", "tokens"),
    default_terms={"contrastive": 1.0, "caption": 2.0, "masked_image": 1.0},
    similarity=dot_similarity,
    same_modality_similarity=dot_similarity,
    decode_captions=greedy_decode,
    rng_purposes=("mask",),  # random masking (model.mim.masking="random")
    export_formats=(),
)
