"""FILIP's token-wise late-interaction contrastive loss (arXiv 2111.07783), sharded and tiled.

With L2-normalised image tokens x [B, Np, D], text tokens y [B, Nt, D] and the text mask
m [B, Nt] (True = a real token):

  s_i2t(i, j) = mean_k max_{r: m[j,r]} <x[i,k], y[j,r]>      (each patch's best word)
  s_t2i(i, j) = mean_{r: m[j,r]} max_k <x[i,k], y[j,r]>      (each word's best patch)
  loss = 0.5 * (mean_i CE over j of s * s_i2t[i, :]  +  mean_j CE over i of s * s_t2i[:, j])

Each device holds b = B / P images and texts. It gathers the texts (tokens and mask, not
their [Np, Nt] interactions) and scores its b images against them in tiles of `chunk` texts
(vljax/losses/tiled_pairs.py): one tile is a [b, chunk, Np, Nt] block reduced at once to its
[b, chunk] scores and rematerialised in the backward pass, so no device ever holds
[b, B, Np, Nt].
"""

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from vljax.losses._sharded import F32, devices_per_batch, pspec_batch
from vljax.losses.tiled_pairs import tile_texts, tiled_pair_infonce


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
    """Texts per tile: `chunk`, else as many as keep one float32 [b, chunk, Np, Nt] tile
    within TILE_BYTES (vljax/losses/tiled_pairs.py)."""
    return tile_texts(4 * b * n_img * n_txt, batch, chunk)


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
    gather = lambda a: lax.all_gather(a, batch_axes, tiled=True)

    def local(x, y, m, s):
        ys, ms = gather(y), gather(m.astype(bool))  # every text: [B, Nt, D], [B, Nt]

        def score_tile(start):
            yt = lax.dynamic_slice_in_dim(ys, start, chunk)
            mt = lax.dynamic_slice_in_dim(ms, start, chunk)
            return late_interaction_scores(x, yt, mt)

        return tiled_pair_infonce(
            score_tile, b=b, batch=batch, chunk=chunk, scale=s.astype(F32), batch_axes=batch_axes
        )

    spec = pspec_batch(batch_axes)
    fn = jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec, P()), out_specs=P())
    return fn(img_tokens, txt_tokens, txt_mask, scale)
