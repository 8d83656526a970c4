"""Every closed set of names a config value picks from: one home, read by the config
validation (vljax/config.py, before any work) and by the code that dispatches on the name.

A new option is added here and where it is implemented; `tests/test_config.py` builds a model
with each model option, so a name listed here but not implemented fails there.
"""

LOSS_KINDS = ("softmax", "sigmoid")
LOSS_IMPLS = ("all_gather", "ring", "grouped")
DTYPES = ("float32", "bfloat16")
ACTIVATIONS = ("gelu", "gelu_tanh", "quick_gelu")
# Attention of the image and text encoders: xla (einsum + softmax, any device) | cudnn
# (jax.nn.dot_product_attention's fused cuDNN kernel on GPU; its XLA form elsewhere).
ATTENTIONS = ("xla", "cudnn")
# What model.remat=True keeps from the forward pass: full (nothing: the whole block is
# recomputed) | dots_saveable (matmul outputs are kept, the rest recomputed).
REMAT_POLICIES = ("full", "dots_saveable")
IMAGE_STEMS = ("patch", "conv", "conv_pool")
IMAGE_POOLS = ("cls", "gap", "map")
POSEMBS = ("learn", "sincos2d")
IMAGE_PROJS = ("linear", "none")
TEXT_POOLS = ("eos", "last", "first", "mean")
TEXT_PROJS = ("linear", "linear_bias")
SCHEDULES = ("cosine", "constant")
MESH_AXES = ("data", "fsdp", "tensor")
# Each a module vljax/methods/<name>.py (vljax/methods/__init__.py).
METHODS = (
    "clip",
    "filip",
    "coca",
    "long_clip",
    "sycoca",
    "symile",
    "multi_caption",
    "video_clip",
    "xpool",
    "snp_s3",
)
# Video models' temporal modelling (vljax/models/video_clip.py): mean | transformer pool the
# frame embeddings; space_time is Frozen in Time's divided attention inside the ViT; xpool
# pools the frames per text (X-Pool; trained and scored by method xpool); early stacks the
# frames on the channel axis for one ViT pass per clip (early fusion).
VIDEO_TEMPORALS = ("mean", "transformer", "space_time", "xpool", "early")
# `vljax prepare --from-video-manifest --sampling`: which frames of a clip are stored
# (vljax/data/video_frames.py).
VIDEO_SAMPLINGS = ("uniform", "fps", "random_segment")
MIM_MASKINGS = ("attentive", "random")  # SyCoCa: which patches the MIM head reconstructs
TPM_MASKINGS = ("relevance", "random")  # TPM-CL: which caption tokens make the hard negative
# Methods with several captions per example (batch field multi_tokens): one per language of
# data.train.lang, or the sentences of the picked caption (DreamLIP's sub-captions).
MULTI_CAPTIONS = ("languages", "sentences")
SYMILE_NEGATIVES = ("n", "n_squared")  # Symile: negatives per positive, O(N) or O(N^2)
EVAL_TYPES = (
    "zeroshot",
    "retrieval",
    "captioning",
    "third_modality",  # Symile: predict the third modality from the other two
    "fewshot",  # linear probe: ridge regression on frozen image embeddings (evals/fewshot.py)
)  # config.evals.<name>.type

# Named lists an eval entry may give instead of its own (vljax/evals/templates.py): ImageNet's
# 1,000 class names for a split labelled by wnid, CLIP's 80 ImageNet prompt templates.
NAMED_CLASSNAMES = ("imagenet",)  # config.evals.<name>.classnames
NAMED_TEMPLATES = ("imagenet80",)  # config.evals.<name>.templates

DBNORM_METHODS = ("dis", "ddis")  # config.evals.<name>.dbnorm.method (vljax/evals/dbnorm.py)

# config key -> its choices
CHOICES = {
    "method": METHODS,
    "loss.kind": LOSS_KINDS,
    "loss.impl": LOSS_IMPLS,
    "model.dtype": DTYPES,
    "model.activation": ACTIVATIONS,
    "model.attention": ATTENTIONS,
    "model.remat_policy": REMAT_POLICIES,
    "model.image.stem": IMAGE_STEMS,
    "model.image.pool": IMAGE_POOLS,
    "model.image.posemb": POSEMBS,
    "model.image.proj": IMAGE_PROJS,
    "model.text.pool": TEXT_POOLS,
    "model.text.proj": TEXT_PROJS,
    "model.mim.masking": MIM_MASKINGS,
    "model.video.temporal": VIDEO_TEMPORALS,
    "loss.tpm_masking": TPM_MASKINGS,
    "data.train.multi_captions": MULTI_CAPTIONS,
    "loss.symile_negatives": SYMILE_NEGATIVES,
    "optimizer.schedule": SCHEDULES,
}


def expected(choices) -> str:
    """`a | b | c`, for error messages."""
    return " | ".join(choices)
