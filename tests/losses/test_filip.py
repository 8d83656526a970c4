"""FILIP's late-interaction loss against a dense float64 evaluation of the formula, on 1, 2, 4
and 8 devices, values and gradients; tiles that do not divide the batch; the memory bound."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from loss_reference import assert_close, filip_scores_loops, mesh_of, shard

from vljax.losses import filip_loss


def _dense_loss(x, y, mm, s):
    sims = jnp.einsum("ikd,jrd->ijkr", x, y)
    i2t = jnp.max(jnp.where(mm[None, :, None, :], sims, -jnp.inf), axis=3).mean(axis=2)
    w = mm[None].astype(jnp.float64)
    t2i = jnp.sum(jnp.max(sims, axis=2) * w, axis=2) / jnp.sum(w, axis=2)
    li, lt = s * i2t, s * t2i
    rows = jnp.mean(jax.nn.logsumexp(li, axis=1) - jnp.diagonal(li))
    cols = jnp.mean(jax.nn.logsumexp(lt, axis=0) - jnp.diagonal(lt))
    return 0.5 * (rows + cols), (i2t, t2i)


# One compiled program (eagerly, each op of the formula would compile its own).
_value_and_grads = jax.jit(jax.value_and_grad(_dense_loss, argnums=(0, 1, 3), has_aux=True))


def reference_loss(x, y, m, s):
    """Loss and gradients in float64 by jax autodiff of a dense masked formula (checked
    against the explicit loops above on the same inputs)."""
    with jax.enable_x64(True):
        x64, y64, s64 = (jnp.asarray(np.asarray(a, np.float64)) for a in (x, y, s))
        (val, (i2t, t2i)), grads = _value_and_grads(x64, y64, jnp.asarray(m), s64)
        assert val.dtype == np.float64
        return float(val), tuple(np.asarray(g) for g in grads), np.asarray(i2t), np.asarray(t2i)


def tokens(batch, n_img=5, n_txt=4, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, n_img, dim))
    y = x[:, :n_txt] + 0.8 * rng.normal(size=(batch, n_txt, dim))  # matched pairs correlate
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    lengths = rng.integers(1, n_txt + 1, size=batch)  # every text has at least one token
    m = np.arange(n_txt)[None, :] < lengths[:, None]
    return x.astype(np.float32), y.astype(np.float32), m


def run(x, y, m, s, mesh, batch_axes=("data",), chunk=None):
    fn = lambda x, y, s: filip_loss(
        x, y, m_sharded, scale=s, mesh=mesh, batch_axes=batch_axes, chunk=chunk
    )
    m_sharded = shard(m, mesh, batch_axes)
    args = (shard(x, mesh, batch_axes), shard(y, mesh, batch_axes), jnp.float32(s))
    val, grads = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2)))(*args)
    return float(val), grads


def test_dense_reference_is_the_formula():
    x, y, m = tokens(6)
    _, _, i2t, t2i = reference_loss(x, y, m, 3.0)
    loop_i2t, loop_t2i = filip_scores_loops(x, y, m)
    np.testing.assert_allclose(i2t, loop_i2t, rtol=1e-12)
    np.testing.assert_allclose(t2i, loop_t2i, rtol=1e-12)


@pytest.mark.parametrize("n_dev,b,chunk", [(1, 8, None), (2, 4, 3), (4, 3, 5), (8, 2, 4)])
def test_matches_dense_float64_reference(n_dev, b, chunk):
    x, y, m = tokens(n_dev * b, seed=n_dev)
    s = 7.0
    val, grads = run(x, y, m, s, mesh_of((n_dev,), ("data",)), chunk=chunk)
    ref_val, ref_grads, _, _ = reference_loss(x, y, m, s)
    assert_close(val, ref_val, 1e-5, "loss")
    for name, g, r in zip(("img_tokens", "txt_tokens", "scale"), grads, ref_grads):
        assert_close(g, r, 1e-5, name)


def test_several_batch_axes():
    x, y, m = tokens(8, seed=3)
    mesh = mesh_of((2, 2, 2), ("data", "tensor", "fsdp"))
    val, grads = run(x, y, m, 5.0, mesh, ("data", "fsdp"), chunk=3)
    ref_val, ref_grads, _, _ = reference_loss(x, y, m, 5.0)
    assert_close(val, ref_val, 1e-5, "loss")
    assert_close(grads[0], ref_grads[0], 1e-5, "img_tokens")


def test_no_device_holds_the_full_interaction():
    """Per-device temporaries of value-and-grad scale with the tile, not with B: tiles of 4
    of B = 64 texts need less than half of one [b, B, Np, Nt] float32 block, and an eighth of
    what a single tile of all B texts (the dense computation) needs."""
    batch, n_img, n_txt, dim, n_dev = 64, 16, 12, 8, 8
    mesh = mesh_of((n_dev,), ("data",))
    shapes = (
        jax.ShapeDtypeStruct((batch, n_img, dim), jnp.float32),
        jax.ShapeDtypeStruct((batch, n_txt, dim), jnp.float32),
        jax.ShapeDtypeStruct((batch, n_txt), jnp.bool_),
    )
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))

    def temp_bytes(chunk):
        fn = lambda x, y, m, s: filip_loss(x, y, m, scale=s, mesh=mesh, chunk=chunk)
        compiled = (
            jax.jit(jax.grad(fn, argnums=(0, 1)), in_shardings=(spec, spec, spec, None))
            .lower(*shapes, jax.ShapeDtypeStruct((), jnp.float32))
            .compile()
        )
        return compiled.memory_analysis().temp_size_in_bytes

    full_block = 4 * (batch // n_dev) * batch * n_img * n_txt
    tiled, dense = temp_bytes(4), temp_bytes(batch)
    assert tiled < full_block / 2
    assert tiled < dense / 8


def test_bad_shapes_are_named():
    mesh = mesh_of((1,), ("data",))
    with pytest.raises(ValueError, match="txt_mask"):
        filip_loss(
            jnp.zeros((2, 3, 4)), jnp.zeros((2, 5, 4)), jnp.ones((2, 4)), scale=1.0, mesh=mesh
        )
