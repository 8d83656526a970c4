"""Video-text CLIP (issue 15, its first slice): the ViT embeds each frame of a clip, a
temporal module pools them over time (`model.video.temporal`: mean | transformer |
space_time, the last Frozen in Time's divided space-time attention in the ViT, then the mean;
vljax/models/video_clip.py; `xpool` is method xpool's), and the pooled, projected,
L2-normalised video embedding (`img/emb`) meets the text tower's in the sharded contrastive
loss, unchanged. Trains on `data.train.dataset = "moving_shapes"` (batch field `video`).
Images embed as 1-frame videos (`encode_images`), so the image evals and `vljax.load` see the
same towers; clips embed by `encode_videos`, so a retrieval eval on a video set
(`moving_shapes:retrieval`) ranks them (`retrieval/<key>/txt2video_r1`, ...)."""

import jax.numpy as jnp

from vljax.errors import ConfigError
from vljax.methods.method import Method, dot_similarity, model_builder
from vljax.models.video_clip import VideoTwoTower

_build = model_builder(VideoTwoTower)


def build_model(model_config):
    if model_config.video.temporal == "xpool":
        raise ConfigError(
            "model.video.temporal='xpool' pools each clip per text, which the contrastive "
            "term and dot-product evals of method video_clip cannot score; train it with "
            "method='xpool' (configs/xpool.py)"
        )
    return _build(model_config)


def example_batch(model_config, n: int = 1) -> dict:
    size = model_config.image.image_size
    frames = model_config.video.frames
    return {
        "video": jnp.zeros((n, frames, size, size, 3), jnp.float32),
        "video_frames": jnp.full((n,), frames, jnp.int32),
        "tokens": jnp.zeros((n, model_config.text.max_len), jnp.int32),
    }


METHOD = Method(
    name="video_clip",
    build_model=build_model,
    example_batch=example_batch,
    batch_fields=("video", "video_frames", "tokens"),
    encode_videos="encode_videos",
    default_terms={"contrastive": 1.0},
    similarity=dot_similarity,
    same_modality_similarity=dot_similarity,
    rng_purposes=("mask",),  # the frame ViT's patch dropout (model.image.mask_ratio > 0)
)
