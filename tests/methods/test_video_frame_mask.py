"""Batch field `video_frames` (vljax/models/video_clip.py): a mixture's image, a clip of T
copies of itself with one real frame, embeds exactly as the 1-frame video under every
temporal module, with random params (tests/random_params.py; the temporal positions and
the projections, zero at init, perturbed further), so that T copies and one frame differ
unless the padding frames are left out."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.random_params import random_variables
from vljax.config import build_config
from vljax.methods import video_clip, xpool

RECIPES = {
    "mean": ("video_clip", {}),
    "transformer": ("video_clip", {"model.video.temporal": "transformer"}),
    "space_time": ("frozen_in_time", {}),
    "xpool": ("xpool", {}),
    "early": ("video_clip", {"model.video.temporal": "early"}),
}


@jax.jit
def shifted(a, key, scale):
    return a + scale * jax.random.normal(key, a.shape, a.dtype)


def perturbed(params, scale=0.3):
    """Leaf by leaf: one small program per leaf shape, shared by the tests. (One program for
    the whole tree compiles a random normal per leaf, and slowly: 4 to 6 s here.)"""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(7), len(leaves))
    return tree.unflatten([shifted(a, k, scale) for a, k in zip(leaves, keys)])


@pytest.mark.parametrize("temporal", RECIPES)
def test_an_image_among_clips_embeds_as_its_one_frame_video(temporal):
    recipe, changes = RECIPES[temporal]
    config = build_config(f"configs/{recipe}.py:tiny", list(changes.items())).model
    method = xpool if recipe == "xpool" else video_clip
    model = method.METHOD.build_model(config)
    t, size = config.video.frames, config.image.image_size
    random = random_variables(model, video_clip.example_batch(config, 1))["params"]
    params = {"params": perturbed(random)}
    keys = jax.random.split(jax.random.key(1), 3)
    image = jax.random.uniform(keys[0], (1, size, size, 3), minval=-1, maxval=1)
    clip = jax.random.uniform(keys[1], (1, t, size, size, 3), minval=-1, maxval=1)
    tokens = jax.random.randint(keys[2], (2, config.text.max_len), 3, config.text.vocab_size)
    video = jnp.concatenate([jnp.broadcast_to(image[:, None], clip.shape), clip])

    def image_row(counts):
        out = model.apply(params, {"video": video, "video_frames": counts, "tokens": tokens})
        if temporal == "xpool":  # the image's scores against both captions
            scores = model.apply(
                params, out["img/frames"], out["txt/emb"], counts, method="score_pairs"
            )
            return scores[0], out["txt/emb"]
        return out["img/emb"][0], None

    @jax.jit
    def one_frame_row(params, image, texts):
        one_frame = model.apply(params, image, method="encode_images")  # [1, 1, H, W, 3] inside
        if temporal == "xpool":
            return model.apply(params, one_frame, texts, method="score_pairs")[0]
        return one_frame[0]

    got, texts = jax.jit(image_row)(jnp.array([1, t], jnp.int32))
    want = one_frame_row(params, image, texts)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if temporal in ("transformer", "space_time"):  # the T copies counted as real differ
        all_real, _ = jax.jit(image_row)(jnp.array([t, t], jnp.int32))
        assert np.abs(np.asarray(all_real) - np.asarray(want)).max() > 1e-3
