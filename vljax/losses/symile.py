"""Symile (arXiv 2411.01053): contrastive learning over M >= 3 modalities, sharded.

Symile scores a tuple of M embeddings with the multilinear inner product
MIP(z_1, ..., z_M) = sum_d prod_m z_m[d]. With M global arrays z_m [B, D] and logit scale s:

negatives="n" (O(N) negatives per row): for each modality m as the target,

  logits_m[i, j] = s * sum_d (prod_{m' != m} z_m'[i, d]) * z_m[j, d]
  L_m = mean_i (lse_j logits_m[i, :] - logits_m[i, i])
  loss = mean_m L_m

  i.e. row i's query is the product of its own non-target embeddings and its candidates are
  every row's target embedding z_m[j] (the other modalities stay row i's).

negatives="n_squared" (the O(N^2) negatives): for a target m and an "anchor" a != m, the anchor
stays row i and every other modality (the target included) is drawn from its own independent
row; for M = 3, with o the third modality,

  logits_{m,a}[i, k, j] = s * sum_d z_a[i, d] z_o[k, d] z_m[j, d]     ([B, B, B])
  L_{m,a} = mean_i (lse_{k,j} logits_{m,a}[i, :, :] - logits_{m,a}[i, i, i])
  loss = mean over the M * (M - 1) pairs (m, a != m) of L_{m,a}

  and for M > 3 the same with all M - 1 non-anchor modalities on independent rows (B^(M-1)
  candidates per anchor row). L_{m,a} does not depend on which non-anchor modality is called
  the target (the candidate set is every combination of the non-anchor modalities' rows), so
  loss = mean_a T_a with T_a = mean_i(lse over all B^(M-1) combinations - positive): for M = 3
  this is each modality in turn as the anchor, scored against all N^2 combinations of the
  other two, which is how we read the paper's O(N^2) variant. That is what is computed.

Missing modalities: `masks[m][i]` False marks z_m[i] as missing; its vector is replaced by the
all-ones vector before anything else. Ones are the identity of the multilinear product, so
every MIP involving a missing entry is the MIP of the entries that are present (the paper
replaces a missing modality by a "missing" representation; here the loss only sees
embeddings, so the identity of the product stands in for it). A missing row gets no gradient.
With L2-normalised embeddings the all-ones vector (norm sqrt(D)) is on another scale than
they are, and the Symile demo trained with these masks did not learn (docs/methods.md,
Symile): the Symile method passes none, embedding a blank placeholder instead.

Sharding, like the all-gather contrastive loss (dense.py): each device holds b = B / P rows of
every z_m, gathers every modality ([B, D] each, in the input dtype) and computes the terms of
its own b rows; the sum is psum'd and divided by M * B (plain autodiff: the gathers transpose
into reduce-scatters). "n": one [b, B] logit block per target. "n_squared": the B^(M-1)
candidates of an anchor row are the combinations c of the first M - 2 non-anchor modalities'
rows (B^(M-2) of them) times the B rows of the last one; they are scored in tiles of `chunk`
combinations, a [b, chunk, B] float32 block each, reduced to a logsumexp and rematerialised in
the backward pass: per-device scratch O(b * chunk * (B + D)), the default chunk keeping a tile
<= 16 MiB (it is all of [b, B, B] only when that fits).

Precision: as in the other losses (docs/losses.md), every row term is relative to its own
positive: lse(all) - positive = softplus(lse_{others} s * (MIP - MIP_positive)). Products and
matmuls run in float32 (bfloat16 inputs are cast after the gather).
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from vljax.choices import SYMILE_NEGATIVES
from vljax.losses._sharded import (
    F32,
    check_batch_axes,
    devices_per_batch,
    dot_nt,
    num_tiles,
    positive_int,
    pspec_batch,
    tile_mask,
    tile_start,
)

NEGATIVES = SYMILE_NEGATIVES  # the public name of vljax.choices' list
TILE_BYTES = 2**24  # default n_squared chunk: one float32 [b, chunk, max(B, D)] tile <= 16 MiB


def symile_loss(
    zs: Sequence,
    *,
    scale,
    mesh,
    batch_axes: str | Sequence[str] = ("data",),
    negatives: str = "n",
    masks: Sequence | None = None,
    chunk: int | None = None,
):
    """Symile's loss on global arrays sharded over `batch_axes` of `mesh` (see module doc).

    Args:
      zs: M >= 3 arrays [B, D] (float32 or bfloat16), one per modality, rows sharded over
        batch_axes; row i of every z_m is the same example.
      scale: scalar logit scale s (e.g. exp(log_scale)).
      mesh: the jax.sharding.Mesh; axes not in batch_axes see replicated inputs.
      batch_axes: mesh axis name(s) the batch is sharded over, major to minor.
      negatives: "n" (O(N) negatives per target) or "n_squared" (every combination of the
        non-anchor modalities' rows; O(B^(M-1)) compute per anchor row).
      masks: None (every modality present) or M entries, each None or a [B] bool (or 0/1)
        array, True where the modality is present; a missing vector counts as all ones.
      chunk: n_squared only: combinations of rows per [b, chunk, B] tile (default: a tile of
        at most 16 MiB). Ignored by "n".

    Returns:
      The scalar float32 loss (replicated), differentiable in every z_m and in scale.
    """
    if mesh is None:
        raise ValueError("symile_loss needs mesh= (a jax.sharding.Mesh)")
    batch_axes = check_batch_axes(mesh, batch_axes)
    if negatives not in NEGATIVES:
        raise ValueError(
            f"unknown negatives {negatives!r}; valid choices: {', '.join(map(repr, NEGATIVES))}"
        )
    if isinstance(zs, jax.Array) or not isinstance(zs, Sequence) or len(zs) < 3:
        raise ValueError("symile_loss needs zs, a list of M >= 3 arrays [B, D] (one per modality)")
    zs = list(zs)
    n_mod = len(zs)
    shape = tuple(zs[0].shape)
    if len(shape) != 2 or any(tuple(z.shape) != shape for z in zs):
        raise ValueError(
            f"every z in zs must be [B, D] with the same shape; got {[tuple(z.shape) for z in zs]}"
        )
    if jnp.ndim(scale) != 0:
        raise ValueError("scale must be a scalar")
    batch, dim = shape
    n = devices_per_batch(batch, mesh, batch_axes)
    if batch < 2:
        raise ValueError(f"symile_loss needs a global batch of at least 2 (negatives); got {batch}")
    if masks is None:
        masks = [None] * n_mod
    if isinstance(masks, jax.Array) or not isinstance(masks, Sequence) or len(masks) != n_mod:
        raise ValueError(f"masks must be None or a list of {n_mod} entries (None or [B] bool)")
    masks = list(masks)
    for m, mask in enumerate(masks):
        if mask is not None and tuple(jnp.shape(mask)) != (batch,):
            raise ValueError(f"masks[{m}] must be [B] = [{batch}]; got {tuple(jnp.shape(mask))}")
    present = [m for m, mask in enumerate(masks) if mask is not None]
    b = batch // n

    n_combos = batch ** (n_mod - 2)  # n_squared: combinations of all but the last row index
    if negatives == "n_squared":
        if n_combos * batch >= 2**31:
            raise ValueError(
                f"negatives='n_squared' scores B^(M-1) = {batch}^{n_mod - 1} candidates per row, "
                "more than int32 indexes; use negatives='n' or a smaller batch"
            )
        if chunk is None:
            chunk = max(1, TILE_BYTES // (4 * b * max(batch, dim)))
        else:
            chunk = positive_int(chunk, "chunk must be a positive int")
        chunk = min(chunk, n_combos)

    gather = lambda a: lax.all_gather(a, batch_axes, tiled=True)

    def local(zs, ms, s):
        s = s.astype(F32)
        zs = list(zs)
        for m, mask in zip(present, ms):
            zs[m] = jnp.where(mask.astype(bool)[:, None], zs[m], jnp.ones((), zs[m].dtype))
        own = lax.axis_index(batch_axes) * b + jnp.arange(b)  # the global rows held here
        loc = [z.astype(F32) for z in zs]  # [b, D] each
        full = [gather(z).astype(F32) for z in zs]  # [B, D] each
        pos = jnp.sum(math.prod(loc), axis=1)  # [b]: MIP of each own row's tuple

        if negatives == "n":
            diag = own[:, None] == jnp.arange(batch)[None, :]
            total = jnp.zeros((), F32)
            for m in range(n_mod):
                query = math.prod(loc[k] for k in range(n_mod) if k != m)  # [b, D]
                off = jnp.where(diag, -jnp.inf, s * (dot_nt(query, full[m]) - pos[:, None]))
                total = total + jnp.sum(jax.nn.softplus(jax.nn.logsumexp(off, axis=1)))
            return lax.psum(total, batch_axes) / (n_mod * batch)

        tiles = num_tiles(n_combos, chunk)
        # Combination c picks row (c // B^(M-3-t)) % B of the t-th combined modality; the
        # positive of global row r is the combination with every index r.
        powers = [batch ** (n_mod - 3 - t) for t in range(n_mod - 2)]
        c_pos = own * sum(powers)
        is_pos_col = own[:, None, None] == jnp.arange(batch)[None, None, :]

        def anchor_lse(a):
            """[b]: lse over every candidate but the positive of s * (MIP - positive)."""
            *rows_of, last = [m for m in range(n_mod) if m != a]

            @jax.checkpoint  # the backward pass recomputes one tile at a time
            def tile(t):
                start = tile_start(t, n_combos, chunk)
                c = start + jnp.arange(chunk)
                w = loc[a][:, None, :]  # [b, 1, D]
                for m, p in zip(rows_of, powers):
                    w = w * jnp.take(full[m], (c // p) % batch, axis=0)[None]
                mip = dot_nt(w.reshape(b * chunk, dim), full[last]).reshape(b, chunk, batch)
                keep = ~((c[None, :, None] == c_pos[:, None, None]) & is_pos_col)
                fresh = tile_mask(t, n_combos, chunk)
                if fresh is not None:
                    keep = keep & fresh[None, :, None]
                off = jnp.where(keep, s * (mip - pos[:, None, None]), -jnp.inf)
                return jax.nn.logsumexp(off, axis=(1, 2))

            return jax.nn.logsumexp(lax.map(tile, jnp.arange(tiles)), axis=0)

        total = jnp.zeros((), F32)
        for a in range(n_mod):
            total = total + jnp.sum(jax.nn.softplus(anchor_lse(a)))
        return lax.psum(total, batch_axes) / (n_mod * batch)

    spec = pspec_batch(batch_axes)
    fn = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=([spec] * n_mod, [spec] * len(present), P()),
        out_specs=P(),
    )
    return fn(zs, [masks[m] for m in present], jnp.asarray(scale))
