"""The multi-caption method: CLIP's parameters exactly (so evals, `vljax.load` and the export
are CLIP's), the K captions embedded by CLIP's text encoder, absent (all-PAD) captions marked
invalid without a NaN in the forward or the gradient."""

import jax
import jax.numpy as jnp
import numpy as np

from vljax.config import load_config
from vljax.methods import get_method
from vljax.token_ids import EOS_ID, PAD_ID


def test_clip_params_and_one_embedding_per_caption():
    config = load_config("configs/one_to_k.py:tiny")
    method, clip = get_method("multi_caption"), get_method("clip")
    model = method.build_model(config.model)
    clip_model = clip.build_model(config.model)
    init = jax.jit(lambda key: model.init(key, method.example_batch(config.model, 2)))
    params = init(jax.random.key(0))["params"]
    clip_params = jax.eval_shape(
        clip_model.init, jax.random.key(0), clip.example_batch(config.model, 2)
    )
    shapes = lambda tree: jax.tree.map(lambda a: a.shape, tree)
    assert shapes(params) == shapes(clip_params["params"])

    length = config.model.text.max_len
    rows = [[5, 6, EOS_ID], [7, EOS_ID], [], [8, 9, 10, EOS_ID], [11, EOS_ID], [EOS_ID]]
    tokens = np.full((2, 3, length), PAD_ID, np.int32)
    for n, row in enumerate(rows):
        tokens[n // 3, n % 3, : len(row)] = row
    size = config.model.image.image_size
    images = jax.random.normal(jax.random.key(1), (2, size, size, 3))
    batch = {"image": images, "multi_tokens": jnp.asarray(tokens)}
    out = jax.jit(model.apply)({"params": params}, batch)
    emb = out["txt/multi_emb"]
    assert emb.shape == (2, 3, config.model.embed_dim)
    np.testing.assert_array_equal(out["txt/multi_valid"], [[True, True, False], [True] * 3])
    encode_texts = jax.jit(lambda p, x: clip_model.apply({"params": p}, x, method="encode_texts"))
    texts = encode_texts(params, jnp.asarray(tokens.reshape(6, length)))
    np.testing.assert_allclose(emb.reshape(6, -1), texts, atol=1e-6)
    np.testing.assert_array_equal(out["txt/emb"], emb[:, 0])
    encode_images = jax.jit(lambda p, x: clip_model.apply({"params": p}, x, method="encode_images"))
    np.testing.assert_allclose(out["img/emb"], encode_images(params, images), atol=1e-6)

    def loss(p):  # every output, the absent caption's too: finite values and gradients
        o = model.apply({"params": p}, batch)
        return jnp.sum(o["txt/multi_emb"] ** 2) + jnp.sum(o["img/emb"])

    grads = jax.jit(jax.grad(loss))(params)
    assert np.all(np.isfinite(np.asarray(emb)))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
