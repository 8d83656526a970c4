"""The time_order term (vljax/losses/terms.py): a clip played backwards as each caption's hard
negative. Reversal against index arithmetic by hand, the model's reversed embedding against
the clip reversed in pixels, the term against a float64 numpy formula."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.random_params import random_variables
from vljax.config import build_config
from vljax.errors import ConfigError
from vljax.losses.terms import time_order_term
from vljax.methods import video_clip
from vljax.models.video_clip import reverse_frames


def test_reverse_frames_reverses_only_each_clips_real_frames():
    frames = np.arange(2 * 4, dtype=np.float32).reshape(2, 4, 1)
    reverse = jax.jit(reverse_frames)  # one program, not one per op
    got = reverse(frames, np.array([4, 2], np.int32))[..., 0]
    np.testing.assert_array_equal(got, [[3, 2, 1, 0], [5, 4, 6, 7]])
    np.testing.assert_array_equal(reverse(frames)[..., 0], [[3, 2, 1, 0], [7, 6, 5, 4]])


@functools.cache
def tiny_model(temporal):
    config = build_config("configs/video_clip.py:tiny", [("model.video.temporal", temporal)]).model
    model = video_clip.build_model(config)
    params = random_variables(model, video_clip.example_batch(config, 1), train=False)
    return config, model, params["params"]


def test_reversed_embedding_is_the_clip_played_backwards():
    """Under the temporal transformer, `img/emb_reversed` equals `encode_videos` of the
    frames reversed in pixel space (with a clip of 2 real frames of 4 reversed in its 2);
    mean pooling has no such output (a clip backwards embeds the same)."""
    config, model, params = tiny_model("transformer")
    size, t = config.image.image_size, config.video.frames
    shape = (2, t, size, size, 3)
    video = np.asarray(jax.random.uniform(jax.random.key(1), shape, minval=-1, maxval=1))
    counts = np.array([t, 2], np.int32)
    tokens = np.ones((2, config.text.max_len), np.int32)
    batch = {"video": video, "video_frames": counts, "tokens": tokens}
    out = jax.jit(lambda p, b: model.apply({"params": p}, b))(params, batch)
    backwards = np.stack([video[0, ::-1], np.concatenate([video[1, 1::-1], video[1, 2:]])])
    encode = jax.jit(
        lambda p, x, c: model.apply({"params": p}, x, counts=c, method="encode_videos")
    )
    want = encode(params, backwards, counts)
    np.testing.assert_allclose(out["img/emb_reversed"], want, atol=1e-5)
    assert np.abs(np.asarray(out["img/emb_reversed"]) - np.asarray(out["img/emb"])).max() > 1e-3

    config, model, params = tiny_model("mean")
    out = jax.jit(lambda p, b: model.apply({"params": p}, b))(params, batch)
    assert "img/emb_reversed" not in out


def unit(rng, shape):
    x = rng.normal(size=shape)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_time_order_term_matches_float64_reference():
    """softplus(s (t . v_rev - t . v)) averaged over the clips of more than one frame; the
    1-frame clip (an image in a mixture) is left out of the mean."""
    rng = np.random.default_rng(0)
    v, rev, t = (unit(rng, (4, 8)) for _ in range(3))
    counts = np.array([4, 1, 3, 2])
    scale = 7.0
    outputs = {
        "img/emb": jnp.asarray(v, jnp.float32),
        "img/emb_reversed": jnp.asarray(rev, jnp.float32),
        "txt/emb": jnp.asarray(t, jnp.float32),
        "scale": jnp.float32(scale),
    }
    term = jax.jit(lambda o, b: time_order_term(o, b, None))  # one program, not one per op
    value, metrics = term(outputs, {"video_frames": counts})
    gap = scale * np.sum(t * (rev - v), axis=-1)
    keep = counts > 1
    want = np.mean(np.log1p(np.exp(gap[keep])))
    np.testing.assert_allclose(float(value), want, rtol=1e-6)
    assert float(metrics["time_order/accuracy"]) == pytest.approx(np.mean(gap[keep] < 0))


def test_time_order_term_without_an_order_aware_module_names_the_fix():
    outputs = {"img/emb": jnp.zeros((2, 4)), "txt/emb": jnp.zeros((2, 4)), "scale": 1.0}
    with pytest.raises(ConfigError, match="temporal=transformer"):
        time_order_term(outputs, {}, None)
