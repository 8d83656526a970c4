"""X-Pool (Gorti et al. 2022, arXiv 2203.15086): video-text CLIP whose clip embedding depends on
the text. The ViT embeds each frame (vljax/models/video_clip.py, `model.video.temporal =
"xpool"`); for each text, X-Pool's cross-modal attention pools the clip's frames with the
text as the query (`XPool`), and the pair scores by the cosine of the text with that pooled
clip. Trains with the term "pair_contrastive" (symmetric InfoNCE on the global batch's [B, B]
scores, sharded and tiled: the loss runs the model's `score_pairs` with the step's params,
`Method.score_pairs`); evals score every text-clip pair the same way (`xpool_similarity`,
which needs the params: `Method.similarity_with_params`). Images are 1-frame clips. No
export, no same-modality similarity (a clip has no one embedding), no accumulation (the loss
scores with the params, which cached microbatch outputs do not carry)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vljax.errors import ConfigError
from vljax.methods import video_clip
from vljax.methods.method import Method, model_builder, scored_in_blocks
from vljax.models.video_clip import VideoTwoTower

# Evals pool [clips, texts, D] in blocks of at most this many float32 elements.
EVAL_BLOCK = 2**24

_build = model_builder(VideoTwoTower)


def build_model(model_config):
    temporal = model_config.video.temporal
    if temporal != "xpool":
        raise ConfigError(
            f"method 'xpool' with model.video.temporal={temporal!r}: X-Pool pools the frames "
            "per text; set --config.model.video.temporal=xpool (configs/xpool.py), or train "
            "the other temporal options with method='video_clip'"
        )
    return _build(model_config)


@functools.partial(jax.jit, static_argnums=0)
def _score(model, params, frames, texts):
    return model.apply({"params": params}, frames, texts, method="score_pairs")


def xpool_similarity(model, params, video_emb, text_emb, direction="img2txt"):
    """Frame embeddings [N, T, D] x L2-normalised texts [M, D] -> float32 [N, M], the same
    both ways. Texts are scored in fixed-size blocks (the last padded with zero rows), so the
    scorer compiles once per clip count."""
    frames, texts = jnp.asarray(video_emb), np.asarray(text_emb, np.float32)
    n, d = frames.shape[0], frames.shape[-1]
    m = len(texts)
    block = max(1, min(m, EVAL_BLOCK // max(1, n * d)))
    return scored_in_blocks(lambda chunk: _score(model, params, frames, chunk), (texts,), block, n)


METHOD = Method(
    name="xpool",
    build_model=build_model,
    example_batch=video_clip.example_batch,
    batch_fields=("video", "video_frames", "tokens"),
    encode_videos="encode_videos",
    default_terms={"pair_contrastive": 1.0},
    similarity_with_params=xpool_similarity,
    score_pairs="score_pairs",
    rng_purposes=("mask",),  # the frame ViT's patch dropout (model.image.mask_ratio > 0)
    cached_accumulation=False,
)
