"""The 1-to-K loss (vljax/losses/multi_positive.py) against a dense float64 evaluation of its
definition, with absent captions, on 1, 2 and 8 devices (loss and gradients); against the
authors' formula (CCRK's labels matrix) when every caption is present; against the dense CLIP
reference when K = 1; bad arguments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from loss_reference import (
    assert_close,
    assert_loss_and_grads_close,
    caption_embeddings,
    mesh_of,
    shard,
    some_absent,
)
from loss_reference import reference as clip_reference

from vljax.losses import multi_positive_loss


def _masked_formula(zimg, ztxt, valid, s):
    """The module docstring's loss, written over the dense [B, B K] logits (float64 jnp)."""
    b, k, d = ztxt.shape
    logits = s * zimg @ ztxt.reshape(b * k, d).T
    v = valid.reshape(b * k)
    owner = jnp.arange(b * k) // k  # the image of each text
    # i2t: each image's softmax over the valid texts, summed at its valid positives.
    row_logp = jax.nn.log_softmax(jnp.where(v[None, :], logits, -jnp.inf), axis=1)
    positive = (owner[None, :] == jnp.arange(b)[:, None]) & v[None, :]
    i2t = -jnp.sum(jnp.where(positive, row_logp, 0.0)) / b
    # t2i: each valid text's softmax over the B images, at its own image.
    col_logp = jax.nn.log_softmax(logits, axis=0)[owner, jnp.arange(b * k)]
    n = jnp.sum(v)
    t2i = -jnp.sum(jnp.where(v, col_logp, 0.0)) / n
    return (i2t + t2i) / 2 / (n / b)


# One compiled program (eagerly, each op of the formula would compile its own).
_value_and_grads = jax.jit(jax.value_and_grad(_masked_formula, argnums=(0, 1, 3)))


def reference(zimg, ztxt, valid, s):
    """(loss, (dzimg, dztxt, dscale)) in float64."""
    with jax.enable_x64(True):
        zi, zt, s64 = [jnp.asarray(np.asarray(a, np.float64)) for a in (zimg, ztxt, s)]
        val, grads = _value_and_grads(zi, zt, jnp.asarray(valid), s64)
        assert val.dtype == np.float64
        return float(val), tuple(np.asarray(g) for g in grads)


def ccrk_formula(zimg, ztxt, s):
    """get_unialign_contrastive_loss of CCRK (models/xvlm.py, need_divm = 0, idx None) in
    numpy float64: the labels matrix, log_softmax both ways, the mean over rows, / tsz."""
    b, k, d = ztxt.shape
    logits = s * np.asarray(zimg, np.float64) @ np.asarray(ztxt, np.float64).reshape(b * k, d).T
    labels_i2t = np.zeros((b, b * k))
    for i in range(b):
        labels_i2t[i, k * i : k * i + k] = 1

    def log_softmax(x):
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    loss_i2t = -np.sum(log_softmax(logits) * labels_i2t, axis=1).mean()
    loss_t2i = -np.sum(log_softmax(logits.T) * labels_i2t.T, axis=1).mean()
    return (loss_i2t + loss_t2i) / 2 / k


def run(zimg, ztxt, valid, s, mesh, batch_axes=("data",)):
    fn = lambda zi, zt, s: multi_positive_loss(
        zi, zt, shard(valid, mesh, batch_axes), scale=s, mesh=mesh, batch_axes=batch_axes
    )
    args = (shard(zimg, mesh, batch_axes), shard(ztxt, mesh, batch_axes), jnp.float32(s))
    val, grads = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2)))(*args)
    return float(val), grads


@pytest.mark.parametrize("n_dev", [1, 2, 8])
def test_matches_dense_float64_reference_with_absent_captions(n_dev):
    zimg, ztxt = caption_embeddings(16, 3, 8, seed=n_dev)
    valid = some_absent(16, 3, seed=n_dev)
    got = run(zimg, ztxt, valid, 5.0, mesh_of((n_dev,), ("data",)))
    assert_loss_and_grads_close(got, reference(zimg, ztxt, valid, 5.0))
    # The absent captions' embeddings do not matter: no value, no gradient.
    moved = np.where(valid[..., None], ztxt, -ztxt)
    again = run(zimg, moved, valid, 5.0, mesh_of((n_dev,), ("data",)))
    assert_close(again[0], got[0], 1e-6, "loss with moved absent captions")
    assert not np.any(np.asarray(got[1][1])[~valid])


def test_every_caption_present_is_the_authors_formula():
    zimg, ztxt = caption_embeddings(8, 4, 8, seed=18, noise=0.7)
    valid = np.ones((8, 4), bool)
    ref_val, ref_grads = reference(zimg, ztxt, valid, 8.0)
    assert_close(ref_val, ccrk_formula(zimg, ztxt, 8.0), 1e-12, "float64 definition vs CCRK")
    assert_loss_and_grads_close(
        run(zimg, ztxt, valid, 8.0, mesh_of((8,), ("data",))), (ref_val, ref_grads)
    )


def test_one_caption_is_clip():
    # Well separated pairs: a small loss, where precision shows.
    zimg, ztxt = caption_embeddings(16, 1, 8, seed=28, noise=0.3)
    val, grads = run(zimg, ztxt, np.ones((16, 1), bool), 10.0, mesh_of((8,), ("data",)))
    ref_val, (gi, gt, gs, _) = clip_reference(zimg, ztxt[:, 0], 10.0, 0.0, "softmax")
    assert ref_val < 0.1
    assert_loss_and_grads_close((val, grads), (ref_val, (gi, gt[:, None], gs)))


def test_several_batch_axes_and_bfloat16():
    zimg, ztxt = caption_embeddings(8, 2, 8, seed=4)
    valid = some_absent(8, 2, seed=4)
    zimg, ztxt = zimg.astype(jnp.bfloat16), ztxt.astype(jnp.bfloat16)
    mesh = mesh_of((2, 2, 2), ("data", "tensor", "fsdp"))
    val, grads = run(zimg, ztxt, valid, 4.0, mesh, ("data", "fsdp"))
    ref_val, ref_grads = reference(zimg, ztxt, valid, 4.0)
    assert_close(val, ref_val, 1e-5, "loss")
    assert grads[0].dtype == grads[1].dtype == jnp.bfloat16
    for name, g, r, tol in zip(("zimg", "ztxt", "scale"), grads, ref_grads, (1e-2, 1e-2, 1e-5)):
        assert_close(g, r, tol, name)


def test_a_single_valid_text_gives_a_finite_loss():
    """Nothing left in a softmax (no valid negative, no other positive) is a zero term, not
    NaN (the masked logits are finite)."""
    zimg, ztxt = caption_embeddings(2, 2, 4, seed=5)
    valid = np.array([[True, False], [False, False]])
    val, grads = run(zimg, ztxt, valid, 5.0, mesh_of((1,), ("data",)))
    assert np.isfinite(val) and all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    assert_loss_and_grads_close((val, grads), reference(zimg, ztxt, valid, 5.0))


def test_bad_arguments_are_named():
    mesh = mesh_of((8,), ("data",))
    zimg, ztxt, valid = jnp.zeros((8, 4)), jnp.zeros((8, 2, 4)), jnp.ones((8, 2), bool)
    cases = [
        (dict(ztxt=jnp.zeros((8, 4))), r"\[B, K, D\]"),
        (dict(ztxt=jnp.zeros((8, 2, 5))), "same B and D"),
        (dict(valid=jnp.ones((8, 3), bool)), r"valid must be \[B, K\]"),
        (dict(zimg=zimg[:4], ztxt=ztxt[:4], valid=valid[:4]), "not divisible by the 8"),
        (dict(scale=jnp.ones(2)), "scale must be a scalar"),
        (dict(batch_axes="model"), "batch_axes"),
        (dict(mesh=None), "needs mesh="),
    ]
    for kw, match in cases:
        kw = {"zimg": zimg, "ztxt": ztxt, "valid": valid, "scale": 1.0, "mesh": mesh, **kw}
        with pytest.raises(ValueError, match=match):
            multi_positive_loss(kw.pop("zimg"), kw.pop("ztxt"), kw.pop("valid"), **kw)
    one = mesh_of((1,), ("data",))
    with pytest.raises(ValueError, match="at least 2"):
        multi_positive_loss(zimg[:1], ztxt[:1], valid[:1], scale=1.0, mesh=one)
