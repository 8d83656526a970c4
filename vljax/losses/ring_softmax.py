"""Exact softmax (CLIP) loss with a ring of text blocks: O(b * chunk + b * D) scratch.

Forward, on each of the P devices (x = its b image rows, y = its b text rows):
  the text block travels around the ring (ppermute issued at the start of a step, so it can
  overlap the step's matmuls); each block is scored in column tiles of `chunk` rows; the row
  log-sum-exp is accumulated online, and the block's partial column log-sum-exp travels with
  the block, arriving back at its owner after P hops. Only x, y and the row and column LSEs
  (each kept as max and log-sum, 4 vectors of b floats) are saved for the backward.
Backward: a second ring recomputes each tile and forms
  g[i,j] = (1/B) * (0.5 * (exp(l[i,j] - lse_row[i]) + exp(l[i,j] - lse_col[j])) - [i == j]);
  dx accumulates locally, the dy accumulator travels with its block back to its owner, and
  d scale is psum'd. The bias cancels in a softmax, so it is not an input here.
"""

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from vljax.losses._sharded import (
    F32,
    axis_size,
    diag_dots,
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


def ring_softmax_loss(zimg, ztxt, scale, *, mesh, batch_axes, chunk=None):
    n = axis_size(mesh, batch_axes)
    batch = zimg.shape[0]
    b = batch // n
    chunk = ring_chunk(b, chunk)
    spec = pspec_batch(batch_axes)
    kw = dict(n=n, batch=batch, chunk=chunk, axes=batch_axes)

    fwd_map = jax.shard_map(
        lambda x, y, s: _forward(x, y, s, **kw),
        mesh=mesh,
        in_specs=(spec, spec, P()),
        out_specs=(P(), (spec, spec), (spec, spec)),
    )
    bwd_map = jax.shard_map(
        lambda x, y, s, r, c, ct: _backward(x, y, s, r, c, ct, **kw),
        mesh=mesh,
        in_specs=(spec, spec, P(), (spec, spec), (spec, spec), P()),
        out_specs=(spec, spec, P()),
    )

    @jax.custom_vjp
    def loss(x, y, s):
        return fwd_map(x, y, s)[0]

    def loss_fwd(x, y, s):
        value, lse_row, lse_col = fwd_map(x, y, s)
        return value, (x, y, s, lse_row, lse_col)

    def loss_bwd(res, ct):
        x, y, s, lse_row, lse_col = res
        dx, dy, ds = bwd_map(x, y, s, lse_row, lse_col, ct.astype(F32))
        return dx.astype(x.dtype), dy.astype(y.dtype), ds.astype(jnp.result_type(s))

    loss.defvjp(loss_fwd, loss_bwd)
    return loss(zimg, ztxt, scale)


def _tiles(x, blk, s, chunk, body, carry):
    """Folds `body(carry, start, mask, yt, d, logits)` over the column tiles of the block:
    start row, fresh-column mask (or None), the tile [chunk, D], x . tile and its logits."""
    b = blk.shape[0]

    def step(c, carry):
        start = tile_start(c, b, chunk)
        yt = lax.dynamic_slice_in_dim(blk, start, chunk)
        d = dot_nt(x, yt)  # [b, chunk] float32
        return body(carry, start, tile_mask(c, b, chunk), yt, d, s * d)

    return lax.fori_loop(0, num_tiles(b, chunk), step, carry)


def _online(m, acc, logits, axis):
    """One online log-sum-exp step: running max m and sum acc of exp(l - m) along `axis`."""
    m_new = jnp.maximum(m, jnp.max(logits, axis=axis))
    e = jnp.exp(logits - jnp.expand_dims(m_new, axis))
    return m_new, acc * jnp.exp(m - m_new) + jnp.sum(e, axis=axis)


def _forward(x, y, s, *, n, batch, chunk, axes):
    """Returns the loss and the row and column LSEs, each as (max, log of sum of exp(l - max)):
    the backward's exp((l - max) - logsum) then loses no precision to the size of the LSE."""
    s = s.astype(F32)
    perm = ring_perm(n)

    def body(carry, start, mask, yt, d, logits):
        (m_row, a_row), (m_col, a_col) = carry
        if mask is not None:  # these columns were counted by the previous tile
            logits = jnp.where(mask[None, :], logits, -jnp.inf)
        m_row, a_row = _online(m_row, a_row, logits, 1)
        tile = lambda v: lax.dynamic_slice_in_dim(v, start, chunk)
        mc, ac = _online(tile(m_col), tile(a_col), logits, 0)
        put = lambda v, t: lax.dynamic_update_slice_in_dim(v, t, start, 0)
        return (m_row, a_row), (put(m_col, mc), put(a_col, ac))

    def step(t, carry, last):
        row, blk, col = carry
        nxt = blk if last else lax.ppermute(blk, axes, perm)  # issued first: overlaps compute
        row, col = _tiles(x, blk, s, chunk, body, (row, col))
        if n > 1:  # the block's column statistics travel with it; after P hops they are home
            col = lax.ppermute(col, axes, perm)
        return row, nxt, col

    empty = (
        varying(jnp.full((x.shape[0],), -jnp.inf, F32), axes),
        varying(jnp.zeros((x.shape[0],), F32), axes),
    )
    (m_row, a_row), _, (m_col, a_col) = ring_loop(n, step, (empty, y, empty))
    row = (m_row, jnp.log(a_row))
    col = (m_col, jnp.log(a_col))
    pos = s * diag_dots(x, y)
    lse = row[0] + row[1] + col[0] + col[1]
    value = lax.psum(jnp.sum(0.5 * lse - pos), axes) / batch
    return value, row, col


def _backward(x, y, s, row, col, ct, *, n, batch, chunk, axes):
    s = s.astype(F32)
    perm = ring_perm(n)
    m_row, ls_row = row
    dd_row = diag_dots(x, y)  # travels with the text block as dd_col

    def body(carry, start, mask, yt, d, logits):
        dx, dy, ds, (m_col, ls_col, dd_col) = carry
        tile = lambda v: lax.dynamic_slice_in_dim(v, start, chunk)[None, :]
        p_row = 0.5 * jnp.exp((logits - m_row[:, None]) - ls_row[:, None])
        p_col = 0.5 * jnp.exp((logits - tile(m_col)) - tile(ls_col))
        # d scale = sum_ij g_ij d_ij with g = 0.5 (p_row + p_col) - [i == j]. As each softmax
        # sums to one, this is sum_ij 0.5 p_row (d_ij - d_ii) + 0.5 p_col (d_ij - d_jj): no
        # cancellation between the positives and the rest, so it keeps float32 precision.
        ds_t = p_row * (d - dd_row[:, None]) + p_col * (d - tile(dd_col))
        p = p_row + p_col
        if mask is not None:
            p = jnp.where(mask[None, :], p, 0.0)
            ds_t = jnp.where(mask[None, :], ds_t, 0.0)
        dx = dx + dot_nn(p.astype(yt.dtype), yt)
        dyt = lax.dynamic_slice_in_dim(dy, start, chunk) + dot_tn(p.astype(x.dtype), x)
        dy = lax.dynamic_update_slice_in_dim(dy, dyt, start, 0)
        return dx, dy, ds + jnp.sum(ds_t), (m_col, ls_col, dd_col)

    def step(t, carry, last):
        dx, ds, blk, cblk, dy = carry
        if last:
            nxt, cnxt = blk, cblk
        else:  # issued first: overlaps compute
            nxt, cnxt = lax.ppermute((blk, cblk), axes, perm)
        dx, dy, ds, _ = _tiles(x, blk, s, chunk, body, (dx, dy, ds, cblk))
        if n > 1:  # the text-gradient accumulator travels with its block back to its owner
            dy = lax.ppermute(dy, axes, perm)
        return dx, ds, nxt, cnxt, dy

    zeros = varying(jnp.zeros(x.shape, F32), axes)
    zero = varying(jnp.zeros((), F32), axes)
    dx, ds, _, _, dy = ring_loop(n, step, (zeros, zero, y, (*col, dd_row), zeros))
    # The diagonal's -[i == j] and the 1/B of both means.
    c = ct / batch
    dx = c * s * (dx - y.astype(F32))
    dy = c * s * (dy - x.astype(F32))
    ds = c * lax.psum(ds, axes)
    return dx, dy, ds
