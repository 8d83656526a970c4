"""The sharded contrastive core: `contrastive_loss` (validation, dispatch to the
implementations: dense.py, ring_softmax.py, ring_sigmoid.py, grouped.py).

Notation (see docs/losses.md): B global batch, P devices along the batch axes, b = B / P rows
per device, logits l = s * zimg @ ztxt.T + bias.

  softmax: 0.5 * (mean_i(lse_j l[i,j] - l[i,i]) + mean_j(lse_i l[i,j] - l[j,j]))
  sigmoid: -(1/B) * sum_ij log_sigmoid(y[i,j] * l[i,j]),  y = +1 on the diagonal, else -1.

Each term is computed relative to its own positive, so that a small loss is not the small
difference of large numbers and keeps float32 precision: a softmax row term is
softplus(lse_{j != i} (l[i,j] - l[i,i])) and a sigmoid positive is log_sigmoid(l[i,i]) itself.
"""

from collections.abc import Sequence

import jax.numpy as jnp

from vljax.choices import LOSS_IMPLS, LOSS_KINDS
from vljax.losses._sharded import check_batch_axes, devices_per_batch, positive_int
from vljax.losses.dense import all_gather_loss
from vljax.losses.grouped import grouped_loss
from vljax.losses.ring_sigmoid import ring_sigmoid_loss
from vljax.losses.ring_softmax import ring_softmax_loss

KINDS, IMPLS = LOSS_KINDS, LOSS_IMPLS  # the public names of vljax.choices' lists


def contrastive_loss(
    zimg,
    ztxt,
    *,
    scale,
    bias=None,
    kind: str = "softmax",
    impl: str = "all_gather",
    mesh=None,
    batch_axes: str | Sequence[str] = ("data",),
    chunk: int | None = None,
    group_size: int | None = None,
):
    """Contrastive loss of L2-normalised embeddings, sharded over `batch_axes` of `mesh`.

    Args:
      zimg, ztxt: global [B, D] arrays (float32 or bfloat16), rows sharded over batch_axes.
      scale: scalar logit scale s (e.g. exp(log_scale)).
      bias: scalar logit bias or None (0). For softmax it cancels (zero gradient).
      kind: "softmax" (CLIP InfoNCE, both directions) or "sigmoid" (SigLIP).
      impl: "all_gather" (b x B logits per device), "ring" (exact, O(b * chunk + b * D)
        scratch, custom VJP), "grouped" (M2-Encoder grouped aggregation, a different
        objective: negatives only within groups of G = `group_size` consecutive devices of
        the flattened batch axes; the loss is the mean over the P / G groups of each group's
        own loss on its G * b rows, i.e. (1/B) * sum of all row terms normalised within
        their group; equal to all_gather when G = P).
      mesh: the jax.sharding.Mesh; axes not in batch_axes see replicated inputs.
      batch_axes: mesh axis name(s) the batch is sharded over, major to minor.
      chunk: ring only: columns per [b, chunk] logit tile (default 512, fewer for b > 32k so
        that a tile stays <= 64 MiB; at most b). Ignored by other impls.
      group_size: grouped only: devices per group, must divide P. Ignored by other impls.

    Returns:
      The scalar float32 loss (replicated). Differentiable in zimg, ztxt, scale and bias.
    """
    batch_axes = check_batch_axes(mesh, batch_axes)
    if kind not in KINDS:
        raise ValueError(f"unknown loss kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    if impl not in IMPLS:
        raise ValueError(f"unknown loss impl {impl!r}; valid impls: {', '.join(IMPLS)}")
    if zimg.ndim != 2 or zimg.shape != ztxt.shape:
        raise ValueError(
            f"zimg and ztxt must both be [B, D] with the same shape; got {zimg.shape} and "
            f"{ztxt.shape}"
        )
    if jnp.ndim(scale) != 0 or (bias is not None and jnp.ndim(bias) != 0):
        raise ValueError("scale and bias must be scalars")
    batch = zimg.shape[0]
    n = devices_per_batch(batch, mesh, batch_axes)
    if impl == "ring":
        chunk = None if chunk is None else positive_int(chunk, "chunk must be a positive int")
        if kind == "softmax":
            return ring_softmax_loss(
                zimg, ztxt, scale, mesh=mesh, batch_axes=batch_axes, chunk=chunk
            )
        return ring_sigmoid_loss(
            zimg, ztxt, scale, bias, mesh=mesh, batch_axes=batch_axes, chunk=chunk
        )
    if impl == "grouped":
        message = (
            f"impl='grouped' needs group_size, a positive int dividing the {n} devices of "
            f"batch axes {batch_axes}"
        )
        group_size = positive_int(group_size, message)
        if n % group_size:
            raise ValueError(f"{message}; got {group_size!r}")
        return grouped_loss(
            zimg,
            ztxt,
            scale,
            bias,
            kind=kind,
            mesh=mesh,
            batch_axes=batch_axes,
            group_size=group_size,
        )
    return all_gather_loss(zimg, ztxt, scale, bias, kind=kind, mesh=mesh, batch_axes=batch_axes)
