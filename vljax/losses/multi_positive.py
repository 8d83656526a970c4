"""The 1-to-K contrastive loss (Nie et al. 2024, arXiv 2406.18254, "Improving the Consistency
in Cross-Lingual Cross-Modal Retrieval with 1-to-K Contrastive Learning"), sharded: every image
has K captions (one per language there; DreamLIP's sub-captions of one long caption here too),
all of them positives of the image's row.

With global arrays zimg [B, D] and ztxt [B, K, D] (caption k of image i is text (i, k), column
i * K + k of the flattened [B * K, D]) and logit scale s, l = s * zimg @ ztxt_flat.T [B, B K].
As in the authors' code (github.com/BUAADreamer/CCRK, models/xvlm.py,
get_unialign_contrastive_loss with need_divm = 0):

  i2t  = mean_i sum_k -log softmax_j(l[i, :])[(i, k)]     image i: its K positives among the
                                                          B K texts
  t2i  = mean_(i, k) -log softmax_m(l[:, (i, k)])[i]      text (i, k): its image among the B
  loss = (i2t + t2i) / 2 / K

With K = 1 it is CLIP's softmax loss. `valid` [B, K] marks the captions that exist (an absent
one, an all-PAD row of the batch, is not a text): invalid texts are left out of every softmax
(no column of i2t) and of every mean. With N = sum(valid) valid texts,

  i2t  = (1/B) sum_i sum_{k valid} -log softmax over the valid texts
  t2i  = (1/N) sum_{(i, k) valid} -log softmax_m(l[:, (i, k)])[i]
  loss = (i2t + t2i) / 2 / (N / B)

i.e. K is the mean number of valid captions per image, so that i2t / K is the mean over the N
valid (image, caption) pairs; with every caption valid, N = B K and this is the formula above
exactly. An image without a valid caption adds no i2t term (it stays a negative of t2i).

Precision: each term is relative to its positive p = (i, k): -log softmax_j(l[i, :])[p] =
softplus(lse({r_i - l_ip} + {l_ip' - l_ip : p' another valid positive of i})), where r_i =
lse of row i over its valid negatives; t2i rows are softplus(lse_{m != i}(l_mp - l_ip)) as in
the all-gather CLIP loss (dense.py). A small loss is not the difference of two large numbers.

Sharding, like the all-gather losses: each device holds b = B / P images and their b K
captions, gathers all B K captions (with `valid`) and all B images, scores its b images
against the B K texts ([b, B K] logits, K times CLIP's) and its b K texts against the B
images; the sums are psum'd. Plain autodiff (the gathers transpose into reduce-scatters).
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

# The logit of a masked-out entry: finite, so a row with nothing left (a batch with a single
# valid text) gives a zero term and a zero gradient rather than -inf - -inf = NaN.
_MASKED = -1e30


def multi_positive_loss(
    zimg,
    ztxt,
    valid,
    *,
    scale,
    mesh,
    batch_axes: str | Sequence[str] = ("data",),
):
    """The 1-to-K loss on global arrays sharded over `batch_axes` of `mesh` (see the module
    docstring for the exact definition).

    Args:
      zimg: [B, D] image embeddings (float32 or bfloat16, L2-normalised), rows sharded.
      ztxt: [B, K, D] caption embeddings, caption k of image i at [i, k]; sharded like zimg.
      valid: bool [B, K]: which captions exist; sharded like zimg.
      scale: scalar logit scale s (e.g. exp(log_scale)).
      mesh: the jax.sharding.Mesh; axes not in batch_axes see replicated inputs.
      batch_axes: mesh axis name(s) the batch is sharded over, major to minor.

    Returns:
      The scalar float32 loss (replicated), differentiable in zimg, ztxt and scale.
    """
    if mesh is None:
        raise ValueError("multi_positive_loss needs mesh= (a jax.sharding.Mesh)")
    batch_axes = check_batch_axes(mesh, batch_axes)
    if zimg.ndim != 2 or ztxt.ndim != 3 or ztxt.shape[::2] != zimg.shape:
        raise ValueError(
            f"zimg must be [B, D] and ztxt [B, K, D] with the same B and D; got "
            f"{tuple(zimg.shape)} and {tuple(ztxt.shape)}"
        )
    if tuple(valid.shape) != tuple(ztxt.shape[:2]):
        raise ValueError(
            f"valid must be [B, K] = {tuple(ztxt.shape[:2])}; got {tuple(valid.shape)}"
        )
    if np.ndim(scale) != 0:
        raise ValueError(f"scale must be a scalar; got shape {np.shape(scale)}")
    batch, k = ztxt.shape[:2]
    devices_per_batch(batch, mesh, batch_axes)  # checks the batch splits evenly
    if batch < 2:
        raise ValueError(f"multi_positive_loss needs a global batch of at least 2; got {batch}")
    gather = lambda a: lax.all_gather(a, batch_axes, tiled=True)

    def local(x, y, v, s):
        s = s.astype(F32)
        rows = x.shape[0]
        own = lax.axis_index(batch_axes) * rows + jnp.arange(rows)  # global image indices
        y_flat = y.reshape(rows * k, -1)  # [b K, D], text (i, k) at row i * K + k
        v_all = gather(v).reshape(batch * k)  # [B K]
        dpos = diag_dots(x[:, None, :], y)  # [b, K]: zimg_i . ztxt_(i, k)
        lpos = s * dpos

        # Image i against every text: r_i over its valid negatives, then each positive's term
        # against r_i and the image's other valid positives.
        logits = s * dot_nt(x, gather(y_flat))  # [b, B K]
        mine = (jnp.arange(batch * k) // k)[None, :] == own[:, None]
        r = jax.nn.logsumexp(jnp.where(v_all[None, :] & ~mine, logits, _MASKED), axis=1)
        others = v[:, None, :] & ~jnp.eye(k, dtype=bool)[None]  # [b, K (k), K (k')]
        rel = jnp.where(others, lpos[:, None, :] - lpos[:, :, None], _MASKED)
        rel = jnp.concatenate([(r[:, None] - lpos)[..., None], rel], axis=-1)
        i2t = jnp.sum(jnp.where(v, jax.nn.softplus(jax.nn.logsumexp(rel, axis=-1)), 0.0))

        # Text (i, k) against every image.
        dimg = dot_nt(y_flat, gather(x))  # [b K, B]
        diag = jnp.repeat(own, k)[:, None] == jnp.arange(batch)[None, :]
        off = jnp.where(diag, -jnp.inf, s * (dimg - dpos.reshape(rows * k, 1)))
        t2i_rows = jax.nn.softplus(jax.nn.logsumexp(off, axis=1))
        t2i = jnp.sum(jnp.where(v.reshape(rows * k), t2i_rows, 0.0))

        i2t, t2i = lax.psum(i2t, batch_axes), lax.psum(t2i, batch_axes)
        n = jnp.maximum(lax.psum(jnp.sum(v).astype(F32), batch_axes), 1.0)  # valid texts
        return 0.5 * (i2t / n + t2i * batch / (n * n))

    spec = pspec_batch(batch_axes)
    fn = jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec, P()), out_specs=P())
    return fn(zimg, ztxt, jnp.asarray(valid, bool), jnp.asarray(scale))
