"""video_clip (vljax/methods/video_clip.py): the :tiny recipe trains; a 1-frame video is the
image path; what frame order can and cannot change."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.video_clip import TINY_EVAL_CLIPS
from tests.methods.runs import assert_trained_smoke_steps, smoke_train
from tests.random_params import random_variables
from vljax.config import build_config
from vljax.methods import clip, video_clip
from vljax.models.video_clip import fuse_frames


@functools.cache
def tiny_model(temporal):
    config = build_config("configs/video_clip.py:tiny", [("model.video.temporal", temporal)]).model
    model = video_clip.build_model(config)
    params = random_variables(
        model, video_clip.example_batch(config, 1)["video"], method="encode_videos"
    )
    return config, model, params["params"]


def clips(config, n=3, seed=1):
    size, t = config.image.image_size, config.video.frames
    return jax.random.uniform(jax.random.key(seed), (n, t, size, size, 3), minval=-1, maxval=1)


def test_tiny_recipe_trains_with_a_finite_falling_loss_and_scores_video_retrieval(tmp_path):
    assert smoke_train("video_clip", tmp_path) == 0
    assert_trained_smoke_steps(tmp_path)
    results = json.loads((tmp_path / "eval.json").read_text())
    for d in ("txt2video", "video2txt"):  # one caption per clip: ranks among TINY_EVAL_CLIPS
        for k in (1, 5, 10):
            assert 0 <= results[f"retrieval/moving_shapes/{d}_r{k}"] <= 1
        assert 1 <= results[f"retrieval/moving_shapes/{d}_medr"] <= TINY_EVAL_CLIPS


def test_negnce_and_tpm_cl_train_on_clips(tmp_path):
    """The hard-negative terms (NegNCE, TPM-CL: docs/methods.md) are selectable for video as
    for images: they read the pooled clip embedding `img/emb` and re-embed masked captions
    with the text tower; each is logged and the total falls. Under early fusion, which this
    run also trains (one ViT pass per clip: the cheapest of the temporal options)."""
    terms = '--config.loss.terms={"contrastive": 1.0, "negnce": 1.0, "tpm_cl": 1.0}'
    early = "--config.model.video.temporal=early"
    assert smoke_train("video_clip", tmp_path, "--config.evals={}", terms, early) == 0
    assert_trained_smoke_steps(tmp_path)
    with open(tmp_path / "metrics.jsonl") as f:
        logged = [json.loads(line) for line in f]
    for term in ("negnce", "tpm_cl"):
        values = [r[f"loss/{term}"] for r in logged if f"loss/{term}" in r]
        assert values and all(np.isfinite(values)), term


def test_a_one_frame_video_embeds_as_the_two_tower_model_embeds_its_image():
    """temporal=mean has no parameters of its own: the same params in the plain two-tower
    model give the same embedding for the image that the video model gives its 1-frame clip."""
    config, model, params = tiny_model("mean")
    images = clips(config)[:, 0]
    two_tower = clip.build_model(config)

    @jax.jit
    def embeddings(images):
        return (
            model.apply({"params": params}, images[:, None], method="encode_videos"),
            model.apply({"params": params}, images, method="encode_images"),
            two_tower.apply({"params": params}, images, method="encode_images"),
        )

    as_video, as_image, image_emb = embeddings(images)
    np.testing.assert_allclose(as_video, image_emb, rtol=0, atol=1e-6)
    np.testing.assert_allclose(as_image, image_emb, rtol=0, atol=1e-6)


@pytest.mark.parametrize("temporal", ["mean", "transformer"])
def test_frame_order_matters_only_through_temporal_positions(temporal):
    """Mean pooling ignores frame order, and so does the temporal transformer with its
    temporal positions zeroed (self-attention and the MLP are permutation-equivariant, the
    mean then invariant); its positions (random, not zero) make order count."""
    config, model, params = tiny_model(temporal)
    video = clips(config)
    order = jnp.array([2, 0, 3, 1])

    @jax.jit
    def embed(p, v):
        return model.apply({"params": p}, v, method="encode_videos")

    def order_change(p):
        return np.abs(embed(p, video) - embed(p, video[:, order])).max()

    if temporal == "mean":
        assert order_change(params) < 1e-5
        return
    pe = params["temporal"]["pos_embedding"]
    assert order_change(params) > 1e-3
    zeroed = {**params, "temporal": {**params["temporal"], "pos_embedding": jnp.zeros_like(pe)}}
    assert order_change(zeroed) < 1e-5


def test_fuse_frames_stacks_each_clips_frames_and_repeats_its_last_real_one():
    """Early fusion's input against numpy indexing: frame k's channels at 3k, in order; a clip
    of 2 real frames continues with its second, an image (t = 1) is its still clip."""
    rng = np.random.default_rng(0)
    video = rng.uniform(-1, 1, (2, 4, 5, 6, 3)).astype(np.float32)
    fused = np.asarray(jax.jit(fuse_frames, static_argnums=1)(video, 4, jnp.array([4, 2])))
    assert fused.shape == (2, 5, 6, 12)
    for i, frames in enumerate([[0, 1, 2, 3], [0, 1, 1, 1]]):
        want = np.concatenate([video[i, k] for k in frames], axis=-1)
        np.testing.assert_array_equal(fused[i], want)
    image = video[:, :1]
    still = np.asarray(jax.jit(fuse_frames, static_argnums=1)(image, 4))
    np.testing.assert_array_equal(still, np.concatenate([image[:, 0]] * 4, axis=-1))


def test_early_fusion_ignores_padding_frames_and_sees_frame_order():
    """Under `early` a clip embeds from its real frames only (its padding, noise here, never
    reaches the model) and its frames' order changes the embedding (random params): the stem reads
    each frame's pixels on its own channels."""
    config, model, params = tiny_model("early")
    video = clips(config)
    noise = clips(config, seed=2)
    counts = jnp.array([config.video.frames, 2, 1], jnp.int32)
    real = (
        jnp.arange(config.video.frames)[None, :, None, None, None]
        < counts[:, None, None, None, None]
    )
    last = jnp.take_along_axis(video, (counts - 1)[:, None, None, None, None], axis=1)

    @jax.jit
    def embed(p, v, counts=None):
        return model.apply({"params": p}, v, counts=counts, method="encode_videos")

    padded = jnp.where(real, video, noise)
    repeated = jnp.where(real, video, last)
    np.testing.assert_allclose(embed(params, padded, counts), embed(params, repeated), atol=1e-6)
    order = jnp.array([2, 0, 3, 1])
    assert np.abs(embed(params, video) - embed(params, video[:, order])).max() > 1e-3
