"""SNP-S3's significant words (arXiv 2401.17773, "Significant Semantic Strengthening"): which
caption pieces matter most, and the captions that differ from the true one only there.

Significance is tf-idf with the document frequency counted over the captions of the batch
(the global batch under jit): a piece in every caption ("a") scores 0, a rare one (a colour,
a direction) high. The batch is a sample of the training captions, so its document frequency
estimates the corpus's without a statistic that the trainer would have to carry; the price is
that it is noisy for small batches and that the model computes across the examples of its
batch (the method refuses gradient accumulation, `Method.cached_accumulation`).

Maskable pieces are token_masking's: never PAD, never EOS (the text tower pools at EOS).
Pieces are SentencePiece pieces, not words: a word split into pieces scores per piece.
"""

import jax.numpy as jnp

from vljax.losses.token_masking import maskable_tokens
from vljax.token_ids import PAD_ID


def tfidf_scores(tokens, vocab_size: int):
    """float32 [N, L]: tf x idf of each piece of each caption, 0 at PAD and EOS.

    tf = the piece's count in its caption / the caption's maskable pieces; idf = log((1 + N) /
    (1 + df)), df = the captions of the batch (N) that hold the piece, so a piece in every
    caption scores exactly 0."""
    maskable = maskable_tokens(tokens)
    n, length = tokens.shape
    same = (tokens[:, :, None] == tokens[:, None, :]) & maskable[:, None, :]  # [N, L, L]
    count = jnp.sum(same, axis=-1).astype(jnp.float32)
    pieces = jnp.maximum(jnp.sum(maskable, axis=1, keepdims=True), 1).astype(jnp.float32)
    # A piece's first occurrence in its caption counts the caption once towards df.
    earlier = jnp.tril(jnp.ones((length, length), bool), k=-1)
    first = maskable & ~jnp.any(same & earlier[None], axis=-1)
    df = jnp.zeros((vocab_size,), jnp.float32).at[tokens].add(first.astype(jnp.float32))
    idf = jnp.log((1.0 + n) / (1.0 + df[tokens]))
    return jnp.where(maskable, count / pieces * idf, 0.0)


def significant_words(tokens, scores, k: int):
    """bool [N, L]: each caption's k highest-scoring maskable pieces (ties: the earlier
    position first) among those scoring above 0: a piece that every caption of the batch holds
    ("a") tells no caption apart, so it is never significant, and a caption with fewer such
    pieces has fewer significant ones."""
    maskable = maskable_tokens(tokens)
    ranked = jnp.where(maskable, scores.astype(jnp.float32), -jnp.inf)
    # rank[i, j] = place of piece j in caption i's descending order (stable: earlier first)
    order = jnp.argsort(-ranked, axis=1, stable=True)
    rank = jnp.argsort(order, axis=1, stable=True)
    return maskable & (rank < k) & (scores > 0)


def swap_significant_words(tokens, significant, scores):
    """Hard negatives for significant-semantic matching: in each caption, the most significant
    of its `significant` pieces that can be swapped is replaced by a piece of the same kind.

    "Of the same kind" is read from the batch: another caption holds a different maskable
    piece at the same position between the same neighbours (the same slot: "a big _ circle"
    takes a colour, "to the _" a direction), so the negative differs from the caption at that
    one position and says something else there. Of such captions, the nearest after it in the
    batch (i + 1, i + 2, ... cyclically) gives the piece.

    Returns (negatives int32 [N, L], swapped bool [N, L]: the position replaced, has bool [N]:
    whether the caption has a negative; one without keeps its tokens and must be left out).
    """
    n, length = tokens.shape
    maskable = maskable_tokens(tokens)
    # Neighbours; outside the caption a sentinel that no piece equals.
    outside = jnp.full((n, 1), -1, tokens.dtype)
    left = jnp.concatenate([outside, tokens[:, :-1]], axis=1)
    right = jnp.concatenate([tokens[:, 1:], jnp.full((n, 1), PAD_ID, tokens.dtype)], axis=1)

    def same(a):  # [N, L] -> [N(i), L, N(j)]: a[i, p] == a[j, p]
        return a[:, :, None] == a.T[None, :, :]

    other = ~jnp.eye(n, dtype=bool)[:, None, :]
    candidate = (
        same(left) & same(right) & ~same(tokens) & maskable.T[None, :, :] & other
    )  # [i, p, j]: caption j's piece at p can stand in caption i's
    distance = (jnp.arange(n)[None, :] - jnp.arange(n)[:, None]) % n  # [i, j]
    distance = jnp.where(candidate, distance[:, None, :], n)
    donor = jnp.argmin(distance, axis=-1)  # [N, L]
    swappable = significant & jnp.any(candidate, axis=-1)
    ranked = jnp.where(swappable, scores.astype(jnp.float32), -jnp.inf)
    position = jnp.argmax(ranked, axis=1)  # the most significant swappable piece (earliest)
    has = jnp.any(swappable, axis=1)
    swapped = has[:, None] & (jnp.arange(length)[None, :] == position[:, None])
    rows = jnp.arange(n)
    replacement = tokens[donor[rows, position], position]
    negatives = jnp.where(swapped, replacement[:, None], tokens)
    return negatives.astype(tokens.dtype), swapped, has
