"""NegNCE (vljax/losses/negnce.py) against a dense float64 evaluation of its definition: loss
and gradients on 1 and 8 devices, a batch with known hard negatives (the hard term checked
against a loop over the hard sets), a batch without any (NegNCE == InfoNCE), bad arguments."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from loss_reference import assert_close, assert_loss_and_grads_close, embeddings, mesh_of, shard

from vljax.losses import contrastive_loss
from vljax.losses.negnce import negnce_loss


def _formula(zimg, ztxt, s, margin, weight):
    """The loss over all 2B rows/columns (no sharding), for float64 inputs."""
    logits = s * zimg @ ztxt.T
    n = logits.shape[0]
    pos = jnp.diagonal(logits)
    off = ~jnp.eye(n, dtype=bool)
    info = 0.5 * (
        jnp.mean(jax.nn.logsumexp(logits, axis=1) - pos)
        + jnp.mean(jax.nn.logsumexp(logits, axis=0) - pos)
    )

    def hard(rel, axis):  # mean of the hard differences along `axis`, 0 if none
        h = jax.lax.stop_gradient(off & (rel > margin))
        count = jnp.maximum(jnp.sum(h, axis=axis), 1)
        return jnp.sum(jnp.where(h, rel, 0.0), axis=axis) / count

    rows = hard(logits - pos[:, None], 1)  # image i: texts j with l_ij - l_ii > margin
    cols = hard(logits - pos[None, :], 0)  # text j: images i with l_ij - l_jj > margin
    return info + weight * (jnp.sum(rows) + jnp.sum(cols)) / (2 * n)


@functools.partial(jax.jit, static_argnames=("margin", "weight"))
def _value_and_grads(zimg, ztxt, s, margin, weight):
    """One compiled program (eagerly, each op of the formula would compile its own)."""
    fn = lambda zi, zt, s: _formula(zi, zt, s, margin, weight)
    return jax.value_and_grad(fn, argnums=(0, 1, 2))(zimg, ztxt, s)


def reference(zimg, ztxt, s, margin=0.0, weight=1.0):
    """(loss, (dzimg, dztxt, dscale)) in float64."""
    with jax.enable_x64(True):
        args = [jnp.asarray(np.asarray(a, np.float64)) for a in (zimg, ztxt, s)]
        val, grads = _value_and_grads(*args, margin=margin, weight=weight)
        assert val.dtype == np.float64
        return float(val), tuple(np.asarray(g) for g in grads)


def hard_term_loops(zimg, ztxt, s, margin=0.0):
    """The hard-negative term written out set by set (float64 numpy), and the hard pairs."""
    logits = s * np.asarray(zimg, np.float64) @ np.asarray(ztxt, np.float64).T
    n = len(logits)
    total, pairs = 0.0, set()
    for i in range(n):  # image i as the anchor
        h = [j for j in range(n) if j != i and logits[i, j] - logits[i, i] > margin]
        pairs.update((i, j) for j in h)
        total += sum(logits[i, j] - logits[i, i] for j in h) / max(1, len(h))
    for j in range(n):  # text j as the anchor
        h = [i for i in range(n) if i != j and logits[i, j] - logits[j, j] > margin]
        pairs.update((i, j) for i in h)
        total += sum(logits[i, j] - logits[j, j] for i in h) / max(1, len(h))
    return total / (2 * n), pairs


def run(zimg, ztxt, s, mesh, batch_axes=("data",), **kw):
    fn = lambda zi, zt, s: negnce_loss(zi, zt, scale=s, mesh=mesh, batch_axes=batch_axes, **kw)
    args = (shard(zimg, mesh, batch_axes), shard(ztxt, mesh, batch_axes), jnp.float32(s))
    val, grads = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2)))(*args)
    return float(val), grads


def with_hard_negatives(batch, dim=8, seed=0):
    """Well separated pairs, then text j set (almost) to image i for a few pairs i != j: text j
    beats image i's own caption, and image i beats text j's own image."""
    zimg, ztxt = embeddings(batch, dim, seed=seed, noise=0.5)
    rng = np.random.default_rng(seed + 1)
    planted = [(0, 3), (5, 1), (2, 6)]
    for i, j in planted:
        t = zimg[i] + 0.05 * rng.normal(size=dim)
        ztxt[j] = t / np.linalg.norm(t)
    return zimg, ztxt, planted


@pytest.mark.parametrize(
    "n_dev,batch,margin,weight,noise",
    [(1, 8, 0.0, 1.0, 1.5), (8, 16, 0.0, 1.0, 1.5), (8, 16, 0.5, 2.0, 1.0)],
)
def test_matches_dense_float64_reference(n_dev, batch, margin, weight, noise):
    zimg, ztxt = embeddings(batch, 8, seed=n_dev + batch, noise=noise)
    s = 5.0
    assert hard_term_loops(zimg, ztxt, s, margin)[1]  # the batch does have hard negatives
    got = run(zimg, ztxt, s, mesh_of((n_dev,), ("data",)), margin=margin, weight=weight)
    assert_loss_and_grads_close(got, reference(zimg, ztxt, s, margin, weight))


@pytest.mark.parametrize("n_dev", [1, 8])
def test_planted_hard_negatives(n_dev):
    zimg, ztxt, planted = with_hard_negatives(16)
    s = 10.0
    mesh = mesh_of((n_dev,), ("data",))
    want_hard, pairs = hard_term_loops(zimg, ztxt, s)
    assert set(planted) <= pairs and want_hard > 0
    got = run(zimg, ztxt, s, mesh)
    assert_loss_and_grads_close(got, reference(zimg, ztxt, s))
    info = run(zimg, ztxt, s, mesh, weight=0.0)[0]  # weight 0: plain InfoNCE
    assert_close(info, reference(zimg, ztxt, s, weight=0.0)[0], 1e-5, "infonce")
    hard = got[0] - info
    assert hard > 0
    np.testing.assert_allclose(hard, want_hard, rtol=1e-4, atol=1e-5)
    ref_hard = reference(zimg, ztxt, s)[0] - reference(zimg, ztxt, s, weight=0.0)[0]
    assert_close(ref_hard, want_hard, 1e-10, "float64 hard term")


@pytest.mark.parametrize("n_dev", [1, 8])
def test_no_hard_negatives_is_infonce(n_dev):
    zimg, ztxt = embeddings(16, 8, seed=3, noise=0.1)
    s = 10.0
    want_hard, pairs = hard_term_loops(zimg, ztxt, s)
    assert not pairs and want_hard == 0.0
    mesh = mesh_of((n_dev,), ("data",))
    got = run(zimg, ztxt, s, mesh)
    info = jax.jit(
        jax.value_and_grad(
            lambda zi, zt, s: contrastive_loss(zi, zt, scale=s, kind="softmax", mesh=mesh),
            argnums=(0, 1, 2),
        )
    )(shard(zimg, mesh, ("data",)), shard(ztxt, mesh, ("data",)), jnp.float32(s))
    assert_loss_and_grads_close(got, (float(info[0]), info[1]), rtol=1e-6)
    assert_loss_and_grads_close(got, reference(zimg, ztxt, s))


def test_several_batch_axes_and_bfloat16():
    zimg, ztxt, _ = with_hard_negatives(8, seed=4)
    zimg, ztxt = zimg.astype(jnp.bfloat16), ztxt.astype(jnp.bfloat16)
    mesh = mesh_of((2, 2, 2), ("data", "tensor", "fsdp"))
    val, grads = run(zimg, ztxt, 4.0, mesh, ("data", "fsdp"))
    ref_val, ref_grads = reference(zimg, ztxt, 4.0)
    assert_close(val, ref_val, 1e-5, "loss")
    assert grads[0].dtype == grads[1].dtype == jnp.bfloat16
    for name, g, r, tol in zip(("zimg", "ztxt", "scale"), grads, ref_grads, (1e-2, 1e-2, 1e-5)):
        assert_close(g, r, tol, name)


def test_bad_arguments_are_named():
    mesh = mesh_of((8,), ("data",))
    z = jnp.zeros((8, 4))
    cases = [
        (dict(zimg=z, ztxt=jnp.zeros((8, 5))), "same shape"),
        (dict(zimg=jnp.zeros((8,)), ztxt=jnp.zeros((8,))), r"\[B, D\]"),
        (dict(zimg=jnp.zeros((4, 4)), ztxt=jnp.zeros((4, 4))), "not divisible by the 8"),
        (dict(zimg=z, ztxt=z, scale=jnp.ones(2)), "scale must be a scalar"),
        (dict(zimg=z, ztxt=z, margin=jnp.zeros(3)), "margin must be a scalar"),
        (dict(zimg=z, ztxt=z, weight=[1.0, 2.0]), "weight must be a scalar"),
        (dict(zimg=z, ztxt=z, batch_axes="model"), "batch_axes"),
        (dict(zimg=z, ztxt=z, mesh=None), "needs mesh="),
    ]
    for kw, match in cases:
        kw = {"scale": 1.0, "mesh": mesh, **kw}
        with pytest.raises(ValueError, match=match):
            negnce_loss(**kw)
    one = mesh_of((1,), ("data",))
    with pytest.raises(ValueError, match="at least 2"):
        negnce_loss(jnp.zeros((1, 4)), jnp.zeros((1, 4)), scale=1.0, mesh=one)
