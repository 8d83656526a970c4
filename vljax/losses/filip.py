"""FILIP's token-wise late-interaction contrastive loss (arXiv 2111.07783), sharded and tiled.

With L2-normalised image tokens x [B, Np, D], text tokens y [B, Nt, D] and the text mask
m [B, Nt] (True = a real token):

  s_i2t(i, j) = mean_k max_{r: m[j,r]} <x[i,k], y[j,r]>      (each patch's best word)
  s_t2i(i, j) = mean_{r: m[j,r]} max_k <x[i,k], y[j,r]>      (each word's best patch)
  loss = 0.5 * (mean_i CE over j of s * s_i2t[i, :]  +  mean_j CE over i of s * s_t2i[:, j])

Each device holds b = B / P images and texts. It gathers the texts (tokens and mask, not
their [Np, Nt] interactions) and scores its b images against them in tiles of `chunk` texts:
one tile is a [b, chunk, Np, Nt] block reduced at once to its [b, chunk] scores and
rematerialised in the backward pass, so no device ever holds [b, B, Np, Nt]. The image->text
rows are local; the text->image columns are reduced across devices (a max and a sum of B
floats). Every term is relative to its own positive (softplus of the lse of the others minus
the positive), like the pooled losses (docs/losses.md).
"""

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from vljax.losses._sharded import F32, devices_per_batch, num_tiles, pspec_batch

TILE_BYTES = 2**24  # default chunk: one float32 [b, chunk, Np, Nt] tile stays <= 16 MiB


def late_interaction_scores(x, y, m):
    """x [n, Np, D], y [c, Nt, D], m [c, Nt] bool -> (s_i2t, s_t2i), each float32 [n, c].

    A text with no real token scores 0 both ways."""
    n, n_img, dim = x.shape
    c, n_txt, _ = y.shape
    # One [n * Np, c * Nt] matmul (a plain GEMM), viewed as [n, Np, c, Nt].
    sims = lax.dot_general(
        x.reshape(n * n_img, dim),
        y.reshape(c * n_txt, dim),
        (((1,), (1,)), ((), ())),
        preferred_element_type=F32,
    ).reshape(n, n_img, c, n_txt)
    valid = m[None, None, :, :]
    best_word = jnp.max(jnp.where(valid, sims, -jnp.inf), axis=3)  # [n, Np, c]
    any_word = jnp.any(m, axis=1)[None, None, :]
    i2t = jnp.mean(jnp.where(any_word, best_word, 0.0), axis=1)
    best_patch = jnp.max(sims, axis=1)  # [n, c, Nt]
    words = m.astype(F32)[None]
    t2i = jnp.sum(best_patch * words, axis=2) / jnp.maximum(jnp.sum(words, axis=2), 1.0)
    return i2t, t2i


def filip_chunk(b: int, batch: int, n_img: int, n_txt: int, chunk: int | None) -> int:
    """Texts per tile: `chunk`, else as many as keep one float32 tile within TILE_BYTES."""
    if chunk is None:
        chunk = max(1, TILE_BYTES // (4 * b * n_img * n_txt))
    return max(1, min(batch, int(chunk)))


def filip_loss(
    img_tokens,
    txt_tokens,
    txt_mask,
    *,
    scale,
    mesh,
    batch_axes=("data",),
    chunk: int | None = None,
):
    """FILIP's loss on global arrays sharded over `batch_axes` of `mesh` (see module doc).

    Args:
      img_tokens: [B, Np, D] L2-normalised image tokens (float32 or bfloat16).
      txt_tokens: [B, Nt, D] L2-normalised text tokens.
      txt_mask: [B, Nt] bool or 0/1, true at real (non-padding) text tokens.
      scale: scalar logit scale s.
      chunk: texts per tile (default: a tile of at most 16 MiB).

    Returns the scalar float32 loss, differentiable in the tokens and the scale.
    """
    if isinstance(batch_axes, str):
        batch_axes = (batch_axes,)
    batch_axes = tuple(batch_axes)
    if img_tokens.ndim != 3 or txt_tokens.ndim != 3 or txt_mask.ndim != 2:
        raise ValueError(
            "filip_loss needs img_tokens [B, Np, D], txt_tokens [B, Nt, D], txt_mask [B, Nt]; "
            f"got {img_tokens.shape}, {txt_tokens.shape}, {txt_mask.shape}"
        )
    batch, n_img, dim = img_tokens.shape
    if txt_tokens.shape[0] != batch or txt_tokens.shape[2] != dim:
        raise ValueError(
            f"img_tokens {img_tokens.shape} and txt_tokens {txt_tokens.shape} must share B and D"
        )
    if txt_mask.shape != txt_tokens.shape[:2]:
        raise ValueError(f"txt_mask {txt_mask.shape} must be txt_tokens' [B, Nt]")
    n = devices_per_batch(batch, mesh, batch_axes)
    b, n_txt = batch // n, txt_tokens.shape[1]
    chunk = filip_chunk(b, batch, n_img, n_txt, chunk)
    tiles = num_tiles(batch, chunk)
    gather = lambda a: lax.all_gather(a, batch_axes, tiled=True)

    def local(x, y, m, s):
        s = s.astype(F32)
        ys, ms = gather(y), gather(m.astype(bool))  # every text: [B, Nt, D], [B, Nt]

        @jax.checkpoint  # the backward pass recomputes one tile at a time
        def tile(start):
            yt = lax.dynamic_slice_in_dim(ys, start, chunk)
            mt = lax.dynamic_slice_in_dim(ms, start, chunk)
            return late_interaction_scores(x, yt, mt)

        # The last tile is shifted back inside [0, B); its already-seen columns are dropped.
        starts = jnp.minimum(jnp.arange(tiles) * chunk, batch - chunk)
        i2t, t2i = lax.map(tile, starts)  # [tiles, b, chunk] each
        last_fresh = batch - (tiles - 1) * chunk

        def columns(t):  # -> [b, B]
            full = jnp.moveaxis(t[:-1], 0, 1).reshape(b, (tiles - 1) * chunk)
            return jnp.concatenate([full, t[-1][:, chunk - last_fresh :]], axis=1)

        i2t, t2i = columns(i2t), columns(t2i)
        row0 = lax.axis_index(batch_axes) * b
        own = row0 + jnp.arange(b)
        diag = own[:, None] == jnp.arange(batch)[None, :]

        # Image -> text: the local rows, each relative to its own positive.
        pos_i2t = jnp.sum(jnp.where(diag, i2t, 0.0), axis=1)
        rows = jax.nn.logsumexp(jnp.where(diag, -jnp.inf, s * (i2t - pos_i2t[:, None])), axis=1)
        total = jnp.sum(jax.nn.softplus(rows))

        # Text -> image: column j's positive sits on the device that owns row j.
        pos_t2i = gather(jnp.sum(jnp.where(diag, t2i, 0.0), axis=1))  # [B]
        cols = jnp.where(diag, -jnp.inf, s * (t2i - pos_t2i[None, :]))
        peak = lax.pmax(lax.stop_gradient(jnp.max(cols, axis=0)), batch_axes)
        peak = jnp.where(jnp.isfinite(peak), peak, 0.0)
        lse = peak + jnp.log(lax.psum(jnp.sum(jnp.exp(cols - peak), axis=0), batch_axes))
        # Every device holds all B column terms; each adds its own b of them.
        total = total + jnp.sum(jax.nn.softplus(lax.dynamic_slice_in_dim(lse, row0, b)))
        return lax.psum(0.5 * total, batch_axes) / batch

    spec = pspec_batch(batch_axes)
    fn = jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec, P()), out_specs=P())
    return fn(img_tokens, txt_tokens, txt_mask, scale)
