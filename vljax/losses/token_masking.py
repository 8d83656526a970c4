"""Caption token masking for TPM-CL's generated hard negatives (vljax/losses/tpm_cl.py).

A caption's maskable tokens are its pieces: never PAD (the padding after the text) nor EOS
(the text encoder pools at the first EOS, so masking it would change what is pooled, not
what is said). Caption i with n_i maskable tokens masks

    k_i = min(n_i, max(1, round(ratio * n_i)))      (0 when n_i = 0)

of them, the k_i with the highest scores (ties: the earlier position first), each replaced
by UNK_ID, the vocabulary's one id that stands for no piece (vljax/token_ids.py), like BERT's
[MASK]. The scores pick the masking:

- "relevance": each token's gradient x input relevance to its caption's match with its
  image, `token_relevance` below: the first-order drop of <zimg_i, ztxt_i> when the token's
  embedding is erased. The top ones are the words the match rests on (the colour, the shape),
  so the masked caption is a fine-grained hard negative: it still says most of what the
  image shows. This is our reading of the paper's "adaptive token masking strategy with
  cross-modal interaction" (arXiv 2309.11082; its exact criterion was not available here).
- "random": uniform noise from the step's key, the non-adaptive fallback.
"""

import jax
import jax.numpy as jnp

from vljax.token_ids import EOS_ID, PAD_ID, UNK_ID


def maskable_tokens(tokens):
    """bool [N, L]: the caption pieces that masking may replace (not PAD, not EOS)."""
    return (tokens != PAD_ID) & (tokens != EOS_ID)


def masked_counts(maskable, ratio: float):
    """int32 [N]: k_i = min(n_i, max(1, round(ratio * n_i))), 0 for a caption without pieces."""
    n = jnp.sum(maskable, axis=1)
    k = jnp.maximum(1, jnp.round(ratio * n).astype(jnp.int32))
    return jnp.minimum(k, n).astype(jnp.int32)


def mask_top_tokens(tokens, scores, ratio: float):
    """Replace each caption's k_i highest-scoring maskable tokens with UNK_ID.

    Args:
      tokens: int32 [N, L] captions (pieces, EOS, PAD).
      scores: float [N, L]; only the maskable positions' values matter.
      ratio: fraction of each caption's pieces to mask, in (0, 1].

    Returns:
      (masked tokens int32 [N, L], masked bool [N, L]: the positions replaced).
    """
    maskable = maskable_tokens(tokens)
    ranked = jnp.where(maskable, scores.astype(jnp.float32), -jnp.inf)
    # rank[i, j] = place of token j in caption i's descending order (stable: earlier first)
    order = jnp.argsort(-ranked, axis=1, stable=True)
    rank = jnp.argsort(order, axis=1, stable=True)
    masked = maskable & (rank < masked_counts(maskable, ratio)[:, None])
    return jnp.where(masked, UNK_ID, tokens).astype(tokens.dtype), masked


def masked_fraction(tokens, masked):
    """float32 [N]: masked pieces / maskable pieces of each caption (0 with no pieces)."""
    n = jnp.sum(maskable_tokens(tokens), axis=1).astype(jnp.float32)
    return jnp.sum(masked, axis=1).astype(jnp.float32) / jnp.maximum(n, 1.0)


def token_relevance(encode_texts, zimg, tokens):
    """float32 [N, L]: d <zimg_i, encode_texts(tokens, token_gates=g)_i> / d g_ik at g = 1,
    token k's gradient x input relevance to caption i's match with image i (the gates scale
    each token's embedding). Under stop_gradient: the scores choose, they do not train.

    `encode_texts(tokens, token_gates=None) -> [N, D]` embeds each caption on its own, so the
    gradient of the summed similarities is each caption's own."""
    anchor = jax.lax.stop_gradient(zimg).astype(jnp.float32)

    def matched_similarity(gates):
        ztxt = encode_texts(tokens, token_gates=gates).astype(jnp.float32)
        return jnp.sum(anchor * ztxt)

    gates = jnp.ones(tokens.shape, jnp.float32)
    return jax.lax.stop_gradient(jax.grad(matched_similarity)(gates))


def random_scores(rng, tokens):
    """float32 [N, L] uniform noise: random masking through the same top-k."""
    return jax.random.uniform(rng, tokens.shape, jnp.float32)
