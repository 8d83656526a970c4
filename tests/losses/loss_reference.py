"""Dense float64 reference for the contrastive losses: no shard_map, no tiling, written
straight from the DESIGN.md formulas; gradients by jax autodiff in x64."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def _dense(zimg, ztxt, scale, bias, kind):
    logits = scale * zimg @ ztxt.T + bias
    n = logits.shape[0]
    if kind == "softmax":
        diag = jnp.diagonal(logits)
        rows = jnp.mean(jax.nn.logsumexp(logits, axis=1) - diag)
        cols = jnp.mean(jax.nn.logsumexp(logits, axis=0) - diag)
        return 0.5 * (rows + cols)
    labels = 2.0 * jnp.eye(n) - 1.0
    return -jnp.sum(jax.nn.log_sigmoid(labels * logits)) / n


def _grouped(zimg, ztxt, scale, bias, kind, group_rows):
    """Mean over contiguous row groups of each group's own dense loss."""
    n_groups = zimg.shape[0] // group_rows
    losses = [
        _dense(
            zimg[g * group_rows : (g + 1) * group_rows],
            ztxt[g * group_rows : (g + 1) * group_rows],
            scale,
            bias,
            kind,
        )
        for g in range(n_groups)
    ]
    return sum(losses) / n_groups


# One compiled program per (kind, group_rows, shapes): run eagerly, each op of the formula
# would compile a program of its own. Called under `jax.enable_x64`, it is traced in float64.
@functools.partial(jax.jit, static_argnames=("kind", "group_rows"))
def _value_and_grads(zimg, ztxt, scale, bias, kind, group_rows):
    fn = lambda zi, zt, s, b: _grouped(zi, zt, s, b, kind, group_rows)
    return jax.value_and_grad(fn, argnums=(0, 1, 2, 3))(zimg, ztxt, scale, bias)


def reference(zimg, ztxt, scale, bias, kind, group_rows=None):
    """Returns (loss, (dzimg, dztxt, dscale, dbias)) as float64 numpy."""
    with jax.enable_x64(True):
        args = [jnp.asarray(np.asarray(a, np.float64)) for a in (zimg, ztxt, scale, bias)]
        rows = group_rows or args[0].shape[0]
        val, grads = _value_and_grads(*args, kind=kind, group_rows=rows)
        assert val.dtype == np.float64
        return float(val), tuple(np.asarray(g) for g in grads)


def embeddings(batch, dim, seed=0, dtype=np.float32, noise=1.5):
    """L2-normalised image/text embeddings with matched pairs correlated (less `noise`: better
    separated pairs, a smaller loss)."""
    rng = np.random.default_rng(seed)
    zimg = rng.normal(size=(batch, dim))
    ztxt = zimg + noise * rng.normal(size=(batch, dim))
    zimg /= np.linalg.norm(zimg, axis=1, keepdims=True)
    ztxt /= np.linalg.norm(ztxt, axis=1, keepdims=True)
    return zimg.astype(dtype), ztxt.astype(dtype)


def caption_embeddings(batch, k, dim, seed=0, noise=1.0):
    """L2-normalised images [B, D] and captions [B, K, D], each caption near its image."""
    rng = np.random.default_rng(seed)
    zimg = rng.normal(size=(batch, dim))
    ztxt = zimg[:, None, :] + noise * rng.normal(size=(batch, k, dim))
    zimg /= np.linalg.norm(zimg, axis=-1, keepdims=True)
    ztxt /= np.linalg.norm(ztxt, axis=-1, keepdims=True)
    return zimg.astype(np.float32), ztxt.astype(np.float32)


def some_absent(batch, k, seed=0):
    """A valid mask with about a third of the captions absent, every image keeping one."""
    valid = np.random.default_rng(seed).random((batch, k)) > 0.35
    valid[np.arange(batch), np.arange(batch) % k] = True
    valid[0, 1:] = False  # at least one absent
    return valid


def mesh_of(shape, names):
    n = int(np.prod(shape))
    return Mesh(np.array(jax.devices()[:n]).reshape(shape), names)


def shard(x, mesh, batch_axes):
    return jax.device_put(x, NamedSharding(mesh, P(tuple(batch_axes))))


def assert_close(got, want, rtol, name=""):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    scale = max(float(np.max(np.abs(want))), 1e-30)
    err = float(np.max(np.abs(got - want))) / scale
    assert err <= rtol, f"{name}: max error {err:.3g} (relative to max |ref|) > {rtol}"


def assert_loss_and_grads_close(got, want, rtol=1e-5):
    """(loss, (d zimg, d ztxt, d scale)) against the reference's, each relative to its max."""
    (val, grads), (ref_val, ref_grads) = got, want
    assert_close(val, ref_val, rtol, "loss")
    for name, g, r in zip(("zimg", "ztxt", "scale"), grads, ref_grads, strict=True):
        assert_close(g, r, rtol, name)


def filip_scores_loops(x, y, m):
    """FILIP's two similarity matrices written out pair by pair, float64: s_i2t[i, j] =
    mean over patches of the best real word; s_t2i[i, j] = mean over real words of the best
    patch."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    s_i2t = np.zeros((len(x), len(y)))
    s_t2i = np.zeros((len(x), len(y)))
    for i in range(len(x)):
        for j in range(len(y)):
            sims = x[i] @ y[j][np.asarray(m[j], bool)].T  # [Np, real words]
            s_i2t[i, j] = sims.max(axis=1).mean()
            s_t2i[i, j] = sims.max(axis=0).mean()
    return s_i2t, s_t2i
