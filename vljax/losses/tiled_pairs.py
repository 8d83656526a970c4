"""Symmetric InfoNCE on pair scores that have no one embedding per example (FILIP's late
interaction, X-Pool's text-conditioned pooling), sharded over the batch and tiled.

Each device holds b = B / P rows (images or clips) and has gathered the B texts (small:
embeddings or token features, never the [b, B, ...] interactions). `tiled_pair_infonce` runs
inside the loss's `shard_map`: it scores the device's rows against the texts in tiles of
`chunk` texts, each tile reduced at once to its [b, chunk] scores and rematerialised in the
backward pass, so no device ever holds an interaction tensor for more than one tile. The
row->text terms are local; the text->row columns are reduced across devices (a max and a sum
of B floats). Every term is relative to its own positive (softplus of the logsumexp of the
others minus the positive), so float32 keeps the loss accurate however small it is
(docs/losses.md).
"""

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from vljax.losses._sharded import (
    F32,
    check_batch_axes,
    devices_per_batch,
    num_tiles,
    pspec_batch,
)

TILE_BYTES = 2**24  # the default tile: its largest float32 interaction stays <= 16 MiB


def tile_texts(per_text_bytes: int, batch: int, chunk: int | None) -> int:
    """Texts per tile: `chunk`, else as many as keep one tile's interactions (per_text_bytes
    for each text) within TILE_BYTES; at least 1, at most the batch."""
    if chunk is None:
        chunk = max(1, TILE_BYTES // max(1, per_text_bytes))
    return max(1, min(batch, int(chunk)))


def tiled_pair_infonce(score_tile, *, b: int, batch: int, chunk: int, scale, batch_axes):
    """Inside a shard_map over `batch_axes`: the symmetric InfoNCE of this device's b rows
    (global rows row0 .. row0 + b - 1, row0 = axis index * b) against the B gathered texts.

    score_tile(start) -> (row2txt, txt2row), each float32 [b, chunk]: the scores of the local
    rows with texts start .. start + chunk - 1 (the two directions may score differently, as
    FILIP's do). Returns the global loss, 0.5 * (mean row->text CE + mean text->row CE), the
    same scalar on every device."""
    tiles = num_tiles(batch, chunk)
    # The last tile is shifted back inside [0, B); its already-seen columns are dropped.
    starts = jnp.minimum(jnp.arange(tiles) * chunk, batch - chunk)
    r2t, t2r = lax.map(jax.checkpoint(score_tile), starts)  # [tiles, b, chunk] each
    last_fresh = batch - (tiles - 1) * chunk

    def columns(t):  # -> [b, B]
        full = jnp.moveaxis(t[:-1], 0, 1).reshape(b, (tiles - 1) * chunk)
        return jnp.concatenate([full, t[-1][:, chunk - last_fresh :]], axis=1)

    r2t, t2r = columns(r2t), columns(t2r)
    row0 = lax.axis_index(batch_axes) * b
    own = row0 + jnp.arange(b)
    diag = own[:, None] == jnp.arange(batch)[None, :]

    # Row -> text: the local rows, each relative to its own positive.
    pos_r2t = jnp.sum(jnp.where(diag, r2t, 0.0), axis=1)
    rows = jax.nn.logsumexp(jnp.where(diag, -jnp.inf, scale * (r2t - pos_r2t[:, None])), axis=1)
    total = jnp.sum(jax.nn.softplus(rows))

    # Text -> row: column j's positive sits on the device that owns row j.
    pos_t2r = lax.all_gather(jnp.sum(jnp.where(diag, t2r, 0.0), axis=1), batch_axes, tiled=True)
    cols = jnp.where(diag, -jnp.inf, scale * (t2r - pos_t2r[None, :]))
    peak = lax.pmax(lax.stop_gradient(jnp.max(cols, axis=0)), batch_axes)
    peak = jnp.where(jnp.isfinite(peak), peak, 0.0)
    lse = peak + jnp.log(lax.psum(jnp.sum(jnp.exp(cols - peak), axis=0), batch_axes))
    # Every device holds all B column terms; each adds its own b of them.
    total = total + jnp.sum(jax.nn.softplus(lax.dynamic_slice_in_dim(lse, row0, b)))
    return lax.psum(0.5 * total, batch_axes) / batch


def scored_pair_loss(
    score_pairs,
    params,
    rows,
    texts,
    counts=None,
    *,
    scale,
    mesh,
    batch_axes=("data",),
    chunk=None,
):
    """Symmetric InfoNCE on a scorer's own pair scores, sharded over `batch_axes` and tiled:
    each device scores its b rows against the gathered texts, `chunk` texts at a time.

    Args:
      score_pairs: (params, rows [n, ...], texts [m, D], counts [n]) -> float32 [n, m], the
        score of every row with every text, the same both ways (X-Pool's `score_pairs`: a
        clip's frames pooled for each text).
      params: the scorer's params, replicated into the shard_map (an input, not a closure:
        the transpose of a closed-over sharded array fails inside the manual axes); their
        gradients flow, summed over the devices.
      rows: [B, ...] (a clip's frame embeddings [B, T, D]), sharded over the batch axes.
      texts: [B, D] text embeddings, sharded alike; row i's positive is text i.
      counts: int [B], each row's real frames (batch field `video_frames`); None = all.
      scale: scalar logit scale s.
      chunk: texts per tile (default: a tile of at most 16 MiB, counting each row's whole
        [T, D] per text).

    Returns the scalar float32 loss."""
    batch_axes = check_batch_axes(mesh, batch_axes)
    batch = rows.shape[0]
    if texts.ndim != 2 or texts.shape[0] != batch:
        raise ValueError(f"texts {texts.shape} must be [B, D] with rows' B = {batch}")
    b = batch // devices_per_batch(batch, mesh, batch_axes)
    chunk = tile_texts(4 * b * math.prod(rows.shape[1:]), batch, chunk)
    if counts is None:
        counts = jnp.full((batch,), rows.shape[1], jnp.int32)

    def local(p, r, t, c, s):
        all_texts = lax.all_gather(t, batch_axes, tiled=True)  # [B, D]

        def score_tile(start):
            scores = score_pairs(p, r, lax.dynamic_slice_in_dim(all_texts, start, chunk), c)
            scores = scores.astype(F32)
            return scores, scores

        return tiled_pair_infonce(
            score_tile, b=b, batch=batch, chunk=chunk, scale=s.astype(F32), batch_axes=batch_axes
        )

    spec = pspec_batch(batch_axes)
    in_specs = (P(), spec, spec, spec, P())
    fn = jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=P())
    return fn(params, rows, texts, counts, scale)
