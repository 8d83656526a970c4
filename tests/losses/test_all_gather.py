"""impl="all_gather" against the dense float64 reference, and the argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from loss_reference import assert_close, embeddings, mesh_of, reference, shard

from vljax.losses import contrastive_loss

SCALE, BIAS = 10.0, -5.0


def run(zimg, ztxt, mesh, batch_axes, kind, impl="all_gather", scale=SCALE, bias=BIAS, **kw):
    fn = lambda zi, zt, s, b: contrastive_loss(
        zi, zt, scale=s, bias=b, kind=kind, impl=impl, mesh=mesh, batch_axes=batch_axes, **kw
    )
    args = (
        shard(zimg, mesh, batch_axes),
        shard(ztxt, mesh, batch_axes),
        jnp.float32(scale),
        jnp.float32(bias),
    )
    val, grads = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2, 3)))(*args)
    return float(val), grads


def check(val, grads, zimg, ztxt, kind, rtol, group_rows=None, scale=SCALE, bias=BIAS):
    ref_val, ref_grads = reference(zimg, ztxt, scale, bias, kind, group_rows)
    assert_close(val, ref_val, rtol, "loss")
    for name, g, r in zip(("zimg", "ztxt", "scale", "bias"), grads, ref_grads):
        if name == "bias" and kind == "softmax":
            assert abs(float(g)) < 1e-6  # the bias cancels in a softmax
            continue
        assert_close(g, r, rtol, name)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
@pytest.mark.parametrize("n_dev,b", [(1, 12), (8, 3)])  # test_ring.py covers P = 2, 4
def test_matches_dense_reference(kind, n_dev, b):
    zimg, ztxt = embeddings(n_dev * b, 16)
    mesh = mesh_of((n_dev,), ("data",))
    val, grads = run(zimg, ztxt, mesh, ("data",), kind)
    check(val, grads, zimg, ztxt, kind, 1e-5)


SMALL_LOSS_CASES = [  # (impl, n_dev, b, extra kwargs)
    ("all_gather", 1, 10, {}),
    ("all_gather", 4, 6, {}),
    ("ring", 1, 10, dict(chunk=4)),
    ("ring", 4, 6, dict(chunk=4)),
    ("grouped", 4, 6, dict(group_size=2)),
]


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
@pytest.mark.parametrize("impl,n_dev,b,kw", SMALL_LOSS_CASES)
def test_small_loss_keeps_relative_precision(kind, impl, n_dev, b, kw):
    """Well-separated pairs at a large scale: the softmax loss is ~1e-8 and the sigmoid loss
    ~1e-3 while the logits are ~30, so a loss formed as lse - l_ii (or a positive folded in as
    log_sigmoid(-l) + l) would lose most of its digits to float32 rounding of the logits. Every
    term is relative to its own positive, so the 1e-5 tolerance holds relative to the loss."""
    scale, bias = 30.0, -10.0
    zimg, ztxt = embeddings(n_dev * b, 512, seed=n_dev, noise=1.0)
    mesh = mesh_of((n_dev,), ("data",))
    val, grads = run(zimg, ztxt, mesh, ("data",), kind, impl, scale=scale, bias=bias, **kw)
    group_rows = kw["group_size"] * b if impl == "grouped" else None
    ref_val, _ = reference(zimg, ztxt, scale, bias, kind, group_rows)
    assert ref_val < (1e-7 if kind == "softmax" else 1e-2)  # the case is the small-loss one
    check(val, grads, zimg, ztxt, kind, 1e-5, group_rows, scale=scale, bias=bias)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_several_batch_axes_and_replicated_tensor_axis(kind):
    zimg, ztxt = embeddings(4 * 5, 16, seed=1)
    mesh = mesh_of((2, 2, 2), ("data", "tensor", "fsdp"))
    val, grads = run(zimg, ztxt, mesh, ("data", "fsdp"), kind)
    check(val, grads, zimg, ztxt, kind, 1e-5)


def test_no_bias_and_abstract_inputs():
    mesh = mesh_of((4,), ("data",))
    fn = jax.jit(lambda zi, zt, s: contrastive_loss(zi, zt, scale=s, mesh=mesh))
    spec = jax.ShapeDtypeStruct((8, 4), jnp.float32)
    lowered = fn.lower(spec, spec, jax.ShapeDtypeStruct((), jnp.float32))
    assert lowered.compile() is not None
    zimg, ztxt = embeddings(8, 4)
    want, _ = reference(zimg, ztxt, SCALE, 0.0, "softmax")
    assert_close(fn(zimg, ztxt, jnp.float32(SCALE)), want, 1e-5)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(kind="hinge"), "valid kinds: softmax, sigmoid"),
        (dict(impl="chunked"), "valid impls: all_gather, ring, grouped"),
        (dict(batch_axes=("batch",)), "must be distinct axes of the mesh"),
        (dict(impl="grouped", group_size=3), "group_size"),
        (dict(impl="grouped"), "group_size"),
        (dict(impl="grouped", group_size=0), "group_size"),
        (dict(impl="ring", chunk=0), "chunk must be a positive int"),
        (dict(mesh=None), "needs mesh="),
    ],
)
def test_argument_errors(kw, match):
    mesh = mesh_of((4,), ("data",))
    z = np.zeros((8, 4), np.float32)
    kw = dict(dict(scale=1.0, mesh=mesh), **kw)
    with pytest.raises(ValueError, match=match):
        contrastive_loss(z, z, **kw)


def test_batch_not_divisible():
    mesh = mesh_of((4,), ("data",))
    z = np.zeros((10, 4), np.float32)
    with pytest.raises(ValueError, match="not divisible by the 4 devices"):
        contrastive_loss(z, z, scale=1.0, mesh=mesh)
