"""NegNCE (arXiv 2309.11082, "Dual-Modal Attention-Enhanced Text-Video Retrieval with Triplet
Partial Margin Contrastive Learning"): InfoNCE plus an explicit term on adaptively chosen hard
negatives, sharded.

With global arrays zimg, ztxt [B, D] and logit scale s, l = s * zimg @ ztxt.T:

  InfoNCE = 0.5 * (mean_i (lse_j l[i, :] - l[i, i]) + mean_j (lse_i l[:, j] - l[j, j]))

A negative is hard when it scores above its anchor's positive (by more than `margin`, in logit
units, i.e. after the scale). For image row i and text column j:

  H_i     = {j != i : l[i, j] - l[i, i] > margin}       (texts that beat image i's caption)
  H^c_j   = {i != j : l[i, j] - l[j, j] > margin}       (images that beat text j's image)
  r_i     = mean_{j in H_i} (l[i, j] - l[i, i])          (0 when H_i is empty)
  c_j     = mean_{i in H^c_j} (l[i, j] - l[j, j])        (0 when H^c_j is empty)
  hard    = (sum_i r_i + sum_j c_j) / (2B)               (the mean over the 2B rows/columns)
  loss    = InfoNCE + weight * hard

i.e. each row's term is (1 / max(1, |H_i|)) * sum_{j in H_i} (l[i, j] - l[i, i]). This is the
definition we implement (the paper's exact formula was not consulted); with margin = 0 a hard
negative is one whose cosine similarity exceeds the positive's, cos(i, j) > cos(i, i). The
hard sets are not differentiated (treated as constants): the gradient flows only through the
differences l[i, j] - l[i, i] of the negatives that are hard. With no hard negative in the
batch the loss is exactly InfoNCE (contrastive_loss(kind="softmax")).

Sharding, like the all-gather contrastive loss (dense.py): each device scores its b = B / P
rows against the B gathered texts and its b texts against the B gathered images; the sums are
psum'd and divided by B (plain autodiff: the gathers transpose into reduce-scatters).

Precision: every term is relative to its own positive, s * (dot_ij - dot_ii), computed in
float32 (bfloat16 inputs use float32 accumulation): the InfoNCE rows are softplus(lse_{j != i}
(l_ij - l_ii)) and the hard terms are these same differences.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P

from vljax.losses._sharded import (
    F32,
    check_batch_axes,
    devices_per_batch,
    diag_dots,
    dot_nt,
    pspec_batch,
)


def negnce_loss(
    zimg,
    ztxt,
    *,
    scale,
    mesh,
    batch_axes: str | Sequence[str] = ("data",),
    margin=0.0,
    weight=1.0,
):
    """NegNCE (InfoNCE + weight * mean hard-negative term) on global arrays sharded over
    `batch_axes` of `mesh` (see module doc for the exact definition).

    Args:
      zimg, ztxt: global [B, D] arrays (float32 or bfloat16), rows sharded over batch_axes;
        row i of each is the same pair.
      scale: scalar logit scale s (e.g. exp(log_scale)).
      mesh: the jax.sharding.Mesh; axes not in batch_axes see replicated inputs.
      batch_axes: mesh axis name(s) the batch is sharded over, major to minor.
      margin: scalar; a negative is hard when l[i, j] - l[i, i] > margin (logit units).
      weight: scalar weight of the hard-negative term (0: plain InfoNCE).

    Returns:
      The scalar float32 loss (replicated), differentiable in zimg, ztxt and scale.
    """
    if mesh is None:
        raise ValueError("negnce_loss needs mesh= (a jax.sharding.Mesh)")
    batch_axes = check_batch_axes(mesh, batch_axes)
    if zimg.ndim != 2 or tuple(zimg.shape) != tuple(ztxt.shape):
        raise ValueError(
            f"zimg and ztxt must both be [B, D] with the same shape; got "
            f"{tuple(zimg.shape)} and {tuple(ztxt.shape)}"
        )
    for name, value in (("scale", scale), ("margin", margin), ("weight", weight)):
        if np.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar; got shape {np.shape(value)}")
    batch = zimg.shape[0]
    devices_per_batch(batch, mesh, batch_axes)  # checks the batch splits evenly
    if batch < 2:
        raise ValueError(f"negnce_loss needs a global batch of at least 2 (negatives); got {batch}")
    gather = lambda a: lax.all_gather(a, batch_axes, tiled=True)

    def local(x, y, s, m, w):
        s, m, w = s.astype(F32), m.astype(F32), w.astype(F32)
        rows = x.shape[0]
        own = lax.axis_index(batch_axes) * rows + jnp.arange(rows)
        diag = own[:, None] == jnp.arange(batch)[None, :]
        dd = diag_dots(x, y)

        def terms(d):
            """Per own row: (InfoNCE term, hard-negative term) of the [b, B] dots d."""
            rel = s * (d - dd[:, None])  # l_ij - l_ii
            nce = jax.nn.softplus(jax.nn.logsumexp(jnp.where(diag, -jnp.inf, rel), axis=1))
            hard = lax.stop_gradient(~diag & (rel > m))
            count = jnp.maximum(jnp.sum(hard, axis=1), 1).astype(F32)
            return nce, jnp.sum(jnp.where(hard, rel, 0.0), axis=1) / count

        nce_i, hard_i = terms(dot_nt(x, gather(y)))  # image i vs every text
        nce_t, hard_t = terms(dot_nt(y, gather(x)))  # text j vs every image
        total = 0.5 * jnp.sum(nce_i + nce_t) + 0.5 * w * jnp.sum(hard_i + hard_t)
        return lax.psum(total, batch_axes) / batch

    spec = pspec_batch(batch_axes)
    fn = jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, P(), P(), P()), out_specs=P())
    return fn(zimg, ztxt, jnp.asarray(scale), jnp.asarray(margin, F32), jnp.asarray(weight, F32))
