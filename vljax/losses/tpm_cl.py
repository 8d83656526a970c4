"""TPM-CL (arXiv 2309.11082, "Dual-Modal Attention-Enhanced Text-Video Retrieval with Triplet
Partial Margin Contrastive Learning"): a triplet loss with a partial margin between each
matched pair and a fine-grained hard negative made from the pair's own caption.

For pair i: image embedding zimg_i, its caption's ztxt_i, and zneg_i, the embedding of the
same caption with a fraction f_i of its pieces masked (vljax/losses/token_masking.py). With
cosine similarities (the embeddings are L2-normalised, no logit scale)

  s_i   = <zimg_i, ztxt_i>                   (the positive)
  s~_i  = <zimg_i, zneg_i>                   (the masked caption: a partial match)
  loss  = mean_i max(0, margin * f_i - (s_i - s~_i))

The caption should beat its masked self by a margin that grows with how much of it was
masked: a partial margin (a caption missing one word is almost right; missing half of them,
much less so). Gradients reach all three embeddings (the masked caption is pushed down, the
positive up); f_i is a constant. A triplet whose gap already exceeds its margin contributes
zero value and zero gradient.

The paper's exact formula was not available here (only its abstract: "partial order triplet
samples", "fine-grained hard negatives", "adaptive token masking"); the definition above is
our faithful reading of it, and the one implemented and tested
(tests/losses/test_tpm_cl.py). Cost: row-wise dot products, no [B, B] matrix; plain jnp on
global arrays, so it runs as is under any batch sharding.
"""

import jax.numpy as jnp
import numpy as np

F32 = jnp.float32


def similarity_gaps(zimg, ztxt, zneg):
    """float32 [B]: s_i - s~_i = <zimg_i, ztxt_i> - <zimg_i, zneg_i>."""
    zimg, ztxt, zneg = (a.astype(F32) for a in (zimg, ztxt, zneg))
    return jnp.sum(zimg * (ztxt - zneg), axis=-1)


def tpm_cl_loss(zimg, ztxt, zneg, masked_fraction, *, margin):
    """mean_i max(0, margin * f_i - (<zimg_i, ztxt_i> - <zimg_i, zneg_i>)) (module doc).

    Args:
      zimg, ztxt, zneg: [B, D] L2-normalised embeddings (float32 or bfloat16): images, their
        captions, the masked captions; row i of each is the same pair.
      masked_fraction: float [B], f_i in [0, 1]: the share of caption i's pieces masked.
      margin: scalar, in cosine units: the gap a fully masked caption must leave.

    Returns:
      The scalar float32 loss, differentiable in zimg, ztxt and zneg.
    """
    shapes = {tuple(a.shape) for a in (zimg, ztxt, zneg)}
    if zimg.ndim != 2 or len(shapes) != 1:
        raise ValueError(
            f"zimg, ztxt and zneg must all be [B, D] with one shape; got "
            f"{tuple(zimg.shape)}, {tuple(ztxt.shape)} and {tuple(zneg.shape)}"
        )
    if tuple(masked_fraction.shape) != (zimg.shape[0],):
        raise ValueError(
            f"masked_fraction must be [B] = [{zimg.shape[0]}]; got {tuple(masked_fraction.shape)}"
        )
    if np.ndim(margin) != 0:
        raise ValueError(f"margin must be a scalar; got shape {np.shape(margin)}")
    partial_margin = jnp.asarray(margin, F32) * masked_fraction.astype(F32)
    hinge = jnp.maximum(0.0, partial_margin - similarity_gaps(zimg, ztxt, zneg))
    return jnp.mean(hinge)
