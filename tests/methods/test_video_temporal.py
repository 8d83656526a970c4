"""Video temporal options beyond pooling (issue 15): X-Pool (method xpool, configs/xpool.py)
and Frozen in Time's divided space-time attention (configs/frozen_in_time.py): each :tiny
recipe trains; X-Pool's similarity is its formula; space-time attention with image weights
is the image ViT per frame."""

import functools
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from configs.video_clip import TINY_EVAL_CLIPS
from tests.methods.runs import assert_trained_smoke_steps, smoke_train
from tests.random_params import random_variables
from vljax.config import build_config
from vljax.errors import ConfigError
from vljax.losses.tiled_pairs import scored_pair_loss
from vljax.methods import clip, video_clip, xpool
from vljax.train.state import load_into


@functools.cache
def tiny(recipe, **changes):
    config = build_config(f"configs/{recipe}.py:tiny", list(changes.items())).model
    method = xpool if recipe == "xpool" else video_clip
    model = method.METHOD.build_model(config)
    params = jax.jit(model.init)(jax.random.key(0), video_clip.example_batch(config, 1))
    return config, model, nn.unbox(params)["params"]


def clips(config, n=3, frames=None, seed=1):
    size, t = config.image.image_size, frames or config.video.frames
    return jax.random.uniform(jax.random.key(seed), (n, t, size, size, 3), minval=-1, maxval=1)


def test_xpool_tiny_recipe_trains_and_its_eval_scores_pairs_with_the_params(tmp_path):
    """The smoke run, then its retrieval eval through Method.similarity_with_params."""
    assert smoke_train("xpool", tmp_path) == 0
    assert_trained_smoke_steps(tmp_path)
    results = json.loads((tmp_path / "eval.json").read_text())
    for d in ("txt2video", "video2txt"):
        assert 0 <= results[f"retrieval/moving_shapes/{d}_r1"] <= 1
        assert 1 <= results[f"retrieval/moving_shapes/{d}_medr"] <= TINY_EVAL_CLIPS


def test_frozen_in_time_tiny_recipe_trains(tmp_path):
    """The smoke run without its eval: the eval is video_clip's, run by its own test."""
    assert smoke_train("frozen_in_time", tmp_path, "--config.evals={}") == 0
    assert_trained_smoke_steps(tmp_path)


def layer_norm(x, p, eps):
    x = x - x.mean(-1, keepdims=True)
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * p["scale"] + p["bias"]


def xpool_reference(p, frames, texts, eps, counts=None):
    """s(t, v) = cos(t, ln_3(a + W a + b)), a = ln_2(out(sum_k softmax_k(q.k_k / sqrt(d))
    v_k)), q, k, v projections of ln_1(t), ln_1(f_k), k over each clip's first `counts`
    frames (None = all); in float64 numpy."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
    t, f = layer_norm(texts, p["ln_1"], eps), layer_norm(frames, p["ln_1"], eps)
    proj = lambda x, w: np.einsum("...d,dhk->...hk", x, w["kernel"]) + w["bias"]
    q, k, v = proj(t, p["attn"]["query"]), proj(f, p["attn"]["key"]), proj(f, p["attn"]["value"])
    logits = np.einsum("mhk,nthk->nmht", q, k) / np.sqrt(q.shape[-1])
    if counts is not None:
        real = np.arange(frames.shape[1])[None, :] < np.asarray(counts)[:, None]  # [N, T]
        logits = np.where(real[:, None, None, :], logits, -np.inf)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    a = np.einsum("nmht,nthk->nmhk", w, v)
    a = np.einsum("nmhk,hkd->nmd", a, p["attn"]["out"]["kernel"]) + p["attn"]["out"]["bias"]
    a = layer_norm(a, p["ln_2"], eps)
    pooled = layer_norm(a + a @ p["linear"]["kernel"] + p["linear"]["bias"], p["ln_3"], eps)
    pooled /= np.linalg.norm(pooled, axis=-1, keepdims=True)
    return np.einsum("nmd,md->nm", pooled, texts)


# Two heads: the general case of the paper's one.
XPOOL_CHANGES = {"model.video.heads": 2}


def noisy_pooling(params, seed=3):
    """The params with X-Pool's (identity-initialised) ones perturbed: norms included."""
    leaves, treedef = jax.tree.flatten(params["temporal"])
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [a + 0.3 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys, strict=True)]
    return {**params, "temporal": jax.tree.unflatten(treedef, noisy)}


def test_xpool_similarity_is_its_formula(monkeypatch):
    """The eval's similarity (texts in padded blocks) against a numpy reference, on random
    params (norms included) for 3 clips of 4 frames and 5 texts."""
    config, model, params = tiny("xpool", **XPOOL_CHANGES)
    params = noisy_pooling(params)
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(3, 4, config.embed_dim)).astype(np.float32)
    texts = rng.normal(size=(5, config.embed_dim)).astype(np.float32)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    monkeypatch.setattr(xpool, "EVAL_BLOCK", 2 * 3 * config.embed_dim)  # blocks of 2 texts
    got = xpool.xpool_similarity(model, params, frames, texts, "txt2img")
    want = xpool_reference(params["temporal"], frames, texts, config.ln_eps)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_xpool_pools_a_one_frame_clip_the_same_for_every_text():
    """With one frame the attention weight is 1: an image (a 1-frame clip) has one pooled
    embedding, whatever the text, and scores by its dot product with the text."""
    config, model, params = tiny("xpool", **XPOOL_CHANGES)
    images = clips(config, frames=1)[:, 0]
    texts = np.random.default_rng(0).normal(size=(4, config.embed_dim)).astype(np.float32)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    # Jitted: eagerly each op of these shapes compiles on its own (66 programs).
    apply = jax.jit(model.apply, static_argnames="method")
    frames = apply({"params": params}, images, method="encode_images")
    assert frames.shape == (3, 1, config.embed_dim)
    pooled = apply({"params": params}, frames, texts, method="pool_per_text")
    np.testing.assert_allclose(pooled, np.broadcast_to(pooled[:, :1], pooled.shape), atol=1e-5)
    fixed = pooled[:, 0] / np.linalg.norm(pooled[:, 0], axis=-1, keepdims=True)
    scores = xpool.xpool_similarity(model, params, frames, texts)
    np.testing.assert_allclose(scores, fixed @ texts.T, atol=1e-5)


def test_xpool_and_video_clip_refuse_each_others_temporal_option():
    with pytest.raises(ConfigError, match="temporal=xpool"):
        tiny("xpool", **{"model.video.temporal": "mean"})
    with pytest.raises(ConfigError, match="method='xpool'"):
        tiny("video_clip", **{"model.video.temporal": "xpool"})


# Frozen in Time's params beside the image ViT's: what an image run does not hold.
TEMPORAL_PARAMS = r"time_attn|ln_time|time_embedding"


def test_space_time_attention_with_image_weights_is_the_image_vit_per_frame():
    """Frozen in Time's init: an image two-tower's params loaded into the space-time model as
    `init_from` loads them (`init_from_include` leaving the temporal params at their zero
    init) give each frame the image tower's output; a non-zero temporal attention makes
    frames interact."""
    config, model, params = tiny("frozen_in_time")
    image_config = build_config("configs/video_clip.py:tiny", []).model  # the same towers
    assert image_config.video.temporal == "mean"
    two_tower = clip.build_model(image_config)
    example = clip.METHOD.example_batch(image_config, 1)
    image_params = random_variables(two_tower, example, seed=7)["params"]
    assert "time_embedding" not in image_params["img"]  # the plain image ViT
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    include = [rf"^(?!.*({TEMPORAL_PARAMS}))"]
    loaded = load_into(params, image_params, jax.tree.map(lambda _: device, params), include)
    img = loaded["img"]
    assert not np.any(img["time_embedding"])
    video = clips(config)
    b, t = video.shape[:2]

    per_frame = jax.jit(lambda p, v: model.apply({"params": p}, v, method="encode_frames"))
    image_vit = jax.jit(
        lambda p, x: two_tower.apply({"params": p}, x, method=lambda m, y: m.img(y))
    )
    want = image_vit(image_params, video.reshape(b * t, *video.shape[2:]))
    got = per_frame(loaded, video)
    np.testing.assert_allclose(got.reshape(b * t, -1), want, rtol=0, atol=1e-5)

    out = img["encoder"]["encoderblock_0"]["time_attn"]["out"]
    assert not np.any(out["kernel"])
    moved = jax.tree.map(lambda a: a, loaded)
    moved["img"]["encoder"]["encoderblock_0"]["time_attn"]["out"]["kernel"] = jax.random.normal(
        jax.random.key(4), out["kernel"].shape
    )
    assert np.abs(per_frame(moved, video).reshape(b * t, -1) - want).max() > 1e-3


def infonce64(scores, scale):
    """Symmetric InfoNCE of float64 [B, B] scores, positives on the diagonal."""
    logits = scale * scores
    lse = lambda x: np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1)
    return 0.5 * (np.mean(lse(logits) - np.diag(logits)) + np.mean(lse(logits.T) - np.diag(logits)))


def test_xpool_loss_sharded_and_tiled_is_the_dense_loss():
    """The pair_contrastive loss on 8 devices in tiles of 3 captions (not dividing the 16),
    clips with 1..T real frames: its value against float64 InfoNCE of the formula's scores,
    its gradients (pooling params, frames, texts, scale) against autodiff of the dense
    [B, B] loss on one device."""
    config, model, params = tiny("xpool", **XPOOL_CHANGES)
    params = noisy_pooling(params, seed=4)
    rng = np.random.default_rng(2)
    batch, t, d = 16, config.video.frames, config.embed_dim
    frames = rng.normal(size=(batch, t, d)).astype(np.float32)
    texts = frames.mean(1) + 0.5 * rng.normal(size=(batch, d)).astype(np.float32)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    counts = rng.integers(1, t + 1, size=batch).astype(np.int32)
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    rows = NamedSharding(mesh, P("data"))

    def score(pooling, r, x, c):
        variables = {"params": {**params, "temporal": pooling}}
        return model.apply(variables, r, x, c, method="score_pairs")

    def sharded(pooling, frames, texts, scale):
        return scored_pair_loss(
            score, pooling, frames, texts, counts_sharded, scale=scale, mesh=mesh, chunk=3
        )

    def dense(pooling, frames, texts, scale):
        logits = scale * score(pooling, frames, texts, counts)
        labels = np.arange(batch)
        xent = optax.softmax_cross_entropy_with_integer_labels
        return 0.5 * (jnp.mean(xent(logits, labels)) + jnp.mean(xent(logits.T, labels)))

    counts_sharded = jax.device_put(counts, rows)
    args = (params["temporal"], frames, texts, jnp.float32(8.0))
    sharded_args = (args[0], jax.device_put(frames, rows), jax.device_put(texts, rows), args[3])
    grad = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2, 3)))
    value, grads = grad(sharded)(*sharded_args)
    want_value, want_grads = grad(dense)(*args)
    scores64 = xpool_reference(params["temporal"], frames, texts, config.ln_eps, counts)
    np.testing.assert_allclose(float(value), infonce64(scores64, 8.0), rtol=1e-5)
    np.testing.assert_allclose(float(value), float(want_value), rtol=1e-5)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
