"""Exact sigmoid (SigLIP) loss with a ring of text blocks: O(b * chunk + b * D) scratch.

The sigmoid loss has no global normaliser, so one ring pass yields the loss and, when
differentiating, all the gradients: with z = +l on the diagonal and -l elsewhere,
  loss = -(1/B) sum_ij log_sigmoid(z_ij),   dloss/dl_ij = -(1/B) y_ij sigmoid(-z_ij).
The text block travels around the ring (ppermute issued at the start of a step, overlapping
its tiles' matmuls) with its text-gradient accumulator, which comes back to its owner after P
hops; dx accumulates locally; d scale and d bias are psum'd. The custom VJP's forward saves
the gradients (O(b * D)) and the backward only scales them by the cotangent. Without
differentiation a cheaper pass computes the loss alone.
"""

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from vljax.losses._sharded import (
    F32,
    axis_size,
    dot_nn,
    dot_nt,
    dot_tn,
    num_tiles,
    pspec_batch,
    ring_chunk,
    ring_loop,
    ring_perm,
    tile_mask,
    tile_start,
    varying,
)


def ring_sigmoid_loss(zimg, ztxt, scale, bias, *, mesh, batch_axes, chunk=None):
    n = axis_size(mesh, batch_axes)
    batch = zimg.shape[0]
    b = batch // n
    chunk = ring_chunk(b, chunk)
    spec = pspec_batch(batch_axes)
    kw = dict(n=n, batch=batch, chunk=chunk, axes=batch_axes)
    in_specs = (spec, spec, P(), P())

    value_map = jax.shard_map(
        lambda x, y, s, c: _ring(x, y, s, c, grads=False, **kw)[0],
        mesh=mesh, in_specs=in_specs, out_specs=P(),
    )  # fmt: skip
    grad_map = jax.shard_map(
        lambda x, y, s, c: _ring(x, y, s, c, grads=True, **kw),
        mesh=mesh, in_specs=in_specs, out_specs=(P(), spec, spec, P(), P()),
    )  # fmt: skip

    @jax.custom_vjp
    def loss(x, y, s, c):
        return value_map(x, y, s, c)

    def loss_fwd(x, y, s, c):
        value, *grads = grad_map(x, y, s, c)
        return value, grads  # the gradients are the only residuals

    def loss_bwd(grads, ct):
        return tuple((ct * g).astype(dtype) for g, dtype in zip(grads, dtypes))

    loss.defvjp(loss_fwd, loss_bwd)
    scale = jnp.asarray(scale)
    bias = jnp.zeros((), F32) if bias is None else jnp.asarray(bias)
    dtypes = (zimg.dtype, ztxt.dtype, scale.dtype, bias.dtype)
    return loss(zimg, ztxt, scale, bias)


def _ring(x, y, s, bias, *, grads, n, batch, chunk, axes):
    """One ring pass. Returns the loss and, with grads, (dx, dy, ds, dbias) per unit cotangent."""
    s = s.astype(F32)
    bias = bias.astype(F32)
    b = x.shape[0]
    perm = ring_perm(n)
    rows = jnp.arange(b)[:, None]

    def tile_step(t, blk):
        def fn(c, carry):
            start = tile_start(c, b, chunk)
            mask = tile_mask(c, b, chunk)
            yt = lax.dynamic_slice_in_dim(blk, start, chunk)
            d = dot_nt(x, yt)  # [b, chunk] float32
            logits = s * d + bias
            diag = (t == 0) & (rows == start + jnp.arange(chunk)[None, :])
            z = jnp.where(diag, logits, -logits)
            # log_sigmoid(z) and sigmoid(-z) from one exp: e = exp(-|z|).
            e = jnp.exp(-jnp.abs(z))
            terms = jnp.minimum(z, 0.0) - jnp.log1p(e)
            if mask is not None:
                terms = jnp.where(mask[None, :], terms, 0.0)
            if not grads:
                return carry + jnp.sum(terms)
            total, dx, dy, ds, db = carry
            sig = jnp.where(z >= 0, e, 1.0) / (1.0 + e)  # sigmoid(-z) = d log_sigmoid(z) / dz
            g = jnp.where(diag, sig, -sig)  # d log_sigmoid(z) / dl
            if mask is not None:
                g = jnp.where(mask[None, :], g, 0.0)
            dx = dx + dot_nn(g.astype(yt.dtype), yt)
            dyt = lax.dynamic_slice_in_dim(dy, start, chunk) + dot_tn(g.astype(x.dtype), x)
            dy = lax.dynamic_update_slice_in_dim(dy, dyt, start, 0)
            return total + jnp.sum(terms), dx, dy, ds + jnp.sum(g * d), db + jnp.sum(g)

        return fn

    def step(t, carry, last):
        blk = carry[0]
        nxt = blk if last else lax.ppermute(blk, axes, perm)  # issued first: overlaps compute
        if not grads:
            return nxt, lax.fori_loop(0, num_tiles(b, chunk), tile_step(t, blk), carry[1])
        acc = lax.fori_loop(0, num_tiles(b, chunk), tile_step(t, blk), carry[1])
        total, dx, dy, ds, db = acc
        if n > 1:  # the text-gradient accumulator travels with its block back to its owner
            dy = lax.ppermute(dy, axes, perm)
        return nxt, (total, dx, dy, ds, db)

    zero = varying(jnp.zeros((), F32), axes)
    if not grads:
        _, total = ring_loop(n, step, (y, zero))
        return (-lax.psum(total, axes) / batch,)
    zeros = varying(jnp.zeros(x.shape, F32), axes)
    _, (total, dx, dy, ds, db) = ring_loop(n, step, (y, (zero, zeros, zeros, zero, zero)))
    # loss = -(1/B) * sum of the terms, so every sum above is scaled by -1/B.
    c = -1.0 / batch
    value = c * lax.psum(total, axes)
    return value, c * s * dx, c * s * dy, c * lax.psum(ds, axes), c * lax.psum(db, axes)
