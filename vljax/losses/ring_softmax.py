"""Exact softmax (CLIP) loss with a ring of text blocks: O(b * chunk + b * D) scratch.

Every row term is computed relative to its own positive, so a small loss is not the small
difference of two large numbers (lse ~ s, loss << 1) and keeps float32 precision on any CPU
vector width:

  lse_j l[i,j] - l[i,i] = softplus(L_i),  L_i = lse_{j != i} s * (d[i,j] - d[i,i]),

with d = x . y; the same for columns with d[j,j]. The diagonal's own entry (exactly 0 after the
shift) is left out of L and enters through softplus.

Forward, on each of the P devices (x = its b image rows, y = its b text rows): the text block
travels around the ring with its diagonal dots (ppermute issued at the start of a step, so it
can overlap the step's matmuls); each block is scored in column tiles of `chunk` rows; the row
L is accumulated online, and the block's partial column L travels with the block, arriving
back at its owner after P hops. Only x, y and the row and column L (2 vectors of b floats) are
saved for the backward.
Backward: a second ring recomputes each tile and forms, off the diagonal,
  g[i,j] = (1/B) * 0.5 * (exp(s (d[i,j] - d[i,i]) - softplus(L_row_i))
                          + exp(s (d[i,j] - d[j,j]) - softplus(L_col_j))),
and on it g[i,i] = -(1/B) * 0.5 * (sigmoid(L_row_i) + sigmoid(L_col_i)) (= p_ii - 1 without
the cancellation); dx accumulates locally, the dy accumulator travels with its block back to
its owner, and d scale is psum'd. The bias cancels in a softmax, so it is not an input here.
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
        out_specs=(P(), spec, spec),
    )
    bwd_map = jax.shard_map(
        lambda x, y, s, r, c, ct: _backward(x, y, s, r, c, ct, **kw),
        mesh=mesh,
        in_specs=(spec, spec, P(), spec, spec, P()),
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


def _tiles(x, blk, t, chunk, body, carry):
    """Folds `body(carry, start, keep, yt, d)` over the column tiles of the block held at ring
    step t: start row, the [b, chunk] mask of entries to count (fresh columns, off the
    diagonal), the tile [chunk, D] and d = x . tile."""
    b = blk.shape[0]
    rows = jnp.arange(b)[:, None]

    def step(c, carry):
        start = tile_start(c, b, chunk)
        yt = lax.dynamic_slice_in_dim(blk, start, chunk)
        d = dot_nt(x, yt)  # [b, chunk] float32
        keep = (t != 0) | (rows != start + jnp.arange(chunk)[None, :])  # the own block's diagonal
        fresh = tile_mask(c, b, chunk)
        if fresh is not None:  # these columns were counted by the previous tile
            keep = keep & fresh[None, :]
        return body(carry, start, keep, yt, d)

    return lax.fori_loop(0, num_tiles(b, chunk), step, carry)


def _online(m, acc, logits, axis):
    """One online log-sum-exp step: running max m and sum acc of exp(l - m) along `axis`. A
    line with no entry yet (all -inf) keeps m = -inf and acc = 0."""
    m_new = jnp.maximum(m, jnp.max(logits, axis=axis))
    shift = jnp.where(jnp.isneginf(m_new), 0.0, m_new)
    e = jnp.exp(logits - jnp.expand_dims(shift, axis))
    return m_new, acc * jnp.exp(m - shift) + jnp.sum(e, axis=axis)


def _forward(x, y, s, *, n, batch, chunk, axes):
    """Returns the loss and the row and column L (log-sum-exp of the off-diagonal logits
    relative to the positive; -inf when there is none)."""
    s = s.astype(F32)
    perm = ring_perm(n)
    dd_row = diag_dots(x, y)

    def step(t, carry, last):
        (m_row, a_row), blk, (m_col, a_col) = carry
        nxt = blk if last else lax.ppermute(blk, axes, perm)  # issued first: overlaps compute
        yblk, dd_col = blk

        def body(carry, start, keep, yt, d):
            (m_row, a_row), (m_col, a_col) = carry
            tile = lambda v: lax.dynamic_slice_in_dim(v, start, chunk)
            l_row = jnp.where(keep, s * (d - dd_row[:, None]), -jnp.inf)
            l_col = jnp.where(keep, s * (d - tile(dd_col)[None, :]), -jnp.inf)
            m_row, a_row = _online(m_row, a_row, l_row, 1)
            mc, ac = _online(tile(m_col), tile(a_col), l_col, 0)
            put = lambda v, u: lax.dynamic_update_slice_in_dim(v, u, start, 0)
            return (m_row, a_row), (put(m_col, mc), put(a_col, ac))

        row, col = _tiles(x, yblk, t, chunk, body, ((m_row, a_row), (m_col, a_col)))
        if n > 1:  # the block's column statistics travel with it; after P hops they are home
            col = lax.ppermute(col, axes, perm)
        return row, nxt, col

    empty = (
        varying(jnp.full((x.shape[0],), -jnp.inf, F32), axes),
        varying(jnp.zeros((x.shape[0],), F32), axes),
    )
    (m_row, a_row), _, (m_col, a_col) = ring_loop(n, step, (empty, (y, dd_row), empty))
    lse_row = m_row + jnp.log(a_row)
    lse_col = m_col + jnp.log(a_col)
    terms = 0.5 * (jax.nn.softplus(lse_row) + jax.nn.softplus(lse_col))
    value = lax.psum(jnp.sum(terms), axes) / batch
    return value, lse_row, lse_col


def _backward(x, y, s, lse_row, lse_col, ct, *, n, batch, chunk, axes):
    s = s.astype(F32)
    perm = ring_perm(n)
    dd_row = diag_dots(x, y)  # travels with the text block as dd_col
    sp_row = jax.nn.softplus(lse_row)

    def step(t, carry, last):
        dx, ds, blk, cblk, dy = carry
        if last:
            nxt, cnxt = blk, cblk
        else:  # issued first: overlaps compute
            nxt, cnxt = lax.ppermute((blk, cblk), axes, perm)
        sp_col, dd_col = cblk

        def body(carry, start, keep, yt, d):
            dx, dy, ds = carry
            tile = lambda v: lax.dynamic_slice_in_dim(v, start, chunk)[None, :]
            dr = d - dd_row[:, None]
            dc = d - tile(dd_col)
            p_row = jnp.where(keep, 0.5 * jnp.exp(s * dr - sp_row[:, None]), 0.0)
            p_col = jnp.where(keep, 0.5 * jnp.exp(s * dc - tile(sp_col)), 0.0)
            # d scale = sum_ij g_ij d_ij; as each softmax sums to one this is the sum off the
            # diagonal of 0.5 p_row (d_ij - d_ii) + 0.5 p_col (d_ij - d_jj): no cancellation.
            ds = ds + jnp.sum(p_row * dr + p_col * dc)
            p = p_row + p_col
            dx = dx + dot_nn(p.astype(yt.dtype), yt)
            dyt = lax.dynamic_slice_in_dim(dy, start, chunk) + dot_tn(p.astype(x.dtype), x)
            dy = lax.dynamic_update_slice_in_dim(dy, dyt, start, 0)
            return dx, dy, ds

        dx, dy, ds = _tiles(x, blk, t, chunk, body, (dx, dy, ds))
        if n > 1:  # the text-gradient accumulator travels with its block back to its owner
            dy = lax.ppermute(dy, axes, perm)
        return dx, ds, nxt, cnxt, dy

    zeros = varying(jnp.zeros(x.shape, F32), axes)
    zero = varying(jnp.zeros((), F32), axes)
    cstats = (jax.nn.softplus(lse_col), dd_row)
    dx, ds, _, _, dy = ring_loop(n, step, (zeros, zero, y, cstats, zeros))
    # The diagonal: p_ii - 1 = -sigmoid(L_i) for each direction, and the 1/B of both means.
    g_diag = -0.5 * (jax.nn.sigmoid(lse_row) + jax.nn.sigmoid(lse_col))[:, None]
    c = ct / batch
    dx = c * s * (dx + g_diag * y.astype(F32))
    dy = c * s * (dy + g_diag * x.astype(F32))
    ds = c * lax.psum(ds, axes)
    return dx, dy, ds
