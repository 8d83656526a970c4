"""DBNorm (Wang, Jian & Xue, "Balance Act: Mitigating Hubness in Cross-Modal Retrieval with
Query and Gallery Banks", EMNLP 2023, arXiv 2310.11612): re-scores a query x gallery
similarity matrix with two banks of held-out embeddings, so that hubs (gallery items close to
many queries) stop taking the first place from the right answers.

Notation: `scores` s(q, g) is [Q, G] for the test queries q and the test gallery g;
`query_bank_scores` s(q', g) is [Bq, G] for the query bank q' (held-out samples of the query
modality) against the same gallery; `gallery_bank_scores` s(g', g) is [Bg, G] for the gallery
bank g' (held-out samples of the gallery modality) against the gallery. The banks are never
the test queries or gallery themselves.

Dual inverted softmax (DIS), the product of two inverted softmaxes (Smith et al. 2017; the
query-bank one is QB-Norm's, Bogolin et al. 2022, arXiv 2112.12777), one per bank:

    DIS(q, g) = exp(b1 s(q, g)) / sum_{q'} exp(b1 s(q', g))
              * exp(b2 s(q, g)) / sum_{g'} exp(b2 s(g', g))

A hub has a large similarity to many bank queries and to many bank gallery items, so both
denominators grow and its score falls. The functions here return log DIS (the same ranking,
and no overflow for large b):

    log DIS(q, g) = (b1 + b2) s(q, g) - logsumexp_{q'} b1 s(q', g) - logsumexp_{g'} b2 s(g', g)

Dual dynamic inverted softmax (DDIS) applies DIS only where a hub may be at work, as QB-Norm's
dynamic inverted softmax does for one bank: the activation set A is every gallery item that is
among the top_k of some bank query or of some bank gallery item (A = A_q | A_g); a test query
whose plain top-1 is in A gets its row re-scored by log DIS, any other query keeps its plain
row s(q, .). Only the order within a row matters for retrieval, so rows on the two scales
may sit in one matrix.

Defaults b1 = 1/1.99 (query bank) and b2 = 3 (gallery bank), top_k = 1: those of the authors'
released code (github.com/yimuwangcs/Better_Cross_Modal_Retrieval, DBNorm/dbnorm.py).
"""

import numpy as np

BETA_QUERY = 1 / 1.99
BETA_GALLERY = 3.0
TOP_K = 1
HUB_FRACTION = 0.01


def _logsumexp_over_bank(x):
    """log sum_rows exp(x) per column of float64 [B, G], stable for any scale."""
    top = x.max(axis=0)
    return top + np.log(np.sum(np.exp(x - top), axis=0))


def _check(scores, query_bank_scores, gallery_bank_scores):
    arrays = [np.asarray(a, np.float64) for a in (scores, query_bank_scores, gallery_bank_scores)]
    names = ("scores", "query_bank_scores", "gallery_bank_scores")
    for name, a in zip(names, arrays, strict=True):
        if a.ndim != 2 or a.shape[0] < 1:
            raise ValueError(f"{name} must be [rows >= 1, G]; got shape {a.shape}")
        if a.shape[1] != arrays[0].shape[1]:
            raise ValueError(
                f"{name} scores {a.shape[1]} gallery items; scores has {arrays[0].shape[1]}"
            )
    return arrays


def dual_inverted_softmax(
    scores, query_bank_scores, gallery_bank_scores, beta_query=BETA_QUERY, beta_gallery=BETA_GALLERY
):
    """log DIS (module docstring): float64 [Q, G] from s(q, g) [Q, G], s(q', g) [Bq, G] and
    s(g', g) [Bg, G]."""
    s, sq, sg = _check(scores, query_bank_scores, gallery_bank_scores)
    hubness = _logsumexp_over_bank(beta_query * sq) + _logsumexp_over_bank(beta_gallery * sg)
    return (beta_query + beta_gallery) * s - hubness[None, :]


def activation_set(query_bank_scores, gallery_bank_scores, top_k=TOP_K):
    """bool [G]: the gallery items among the top_k of some row of either bank (DDIS's A)."""
    _, sq, sg = _check(query_bank_scores[:1], query_bank_scores, gallery_bank_scores)
    if not 1 <= top_k <= sq.shape[1]:
        raise ValueError(f"top_k must be in [1, {sq.shape[1]}], got {top_k}")
    active = np.zeros(sq.shape[1], bool)
    for bank in (sq, sg):
        # Stable sort of -s: among equal scores the lower index counts as nearer.
        active[np.argsort(-bank, axis=1, kind="stable")[:, :top_k]] = True
    return active


def dual_dynamic_inverted_softmax(
    scores,
    query_bank_scores,
    gallery_bank_scores,
    beta_query=BETA_QUERY,
    beta_gallery=BETA_GALLERY,
    top_k=TOP_K,
):
    """DDIS (module docstring): float64 [Q, G]; row q is log DIS(q, .) when the plain top-1 of
    q (np.argmax: the lowest index among ties) is in `activation_set`, else s(q, .)."""
    s, sq, sg = _check(scores, query_bank_scores, gallery_bank_scores)
    active = activation_set(sq, sg, top_k)
    rescore = active[np.argmax(s, axis=1)]
    dis = dual_inverted_softmax(s, sq, sg, beta_query, beta_gallery)
    return np.where(rescore[:, None], dis, s)


NORMALIZERS = {"dis": dual_inverted_softmax, "ddis": dual_dynamic_inverted_softmax}
# The options (config.evals.<name>.dbnorm keys) each normaliser takes, beside the scores.
NORMALIZER_OPTIONS = {
    "dis": ("beta_query", "beta_gallery"),
    "ddis": ("beta_query", "beta_gallery", "top_k"),
}


def hub_occurrence(scores, fraction=HUB_FRACTION) -> float:
    """How much of the top-1 retrieval the hubs take, from [Q, G] scores.

    Let N1(g) be the number of queries whose top-1 gallery item is g (np.argmax per row: the
    lowest index among tied scores), and H the h = max(1, ceil(fraction * G)) gallery items
    with the largest N1 (the most-retrieved 1% by default). Hub occurrence is the fraction of
    the Q queries whose top-1 is in H: sum_{g in H} N1(g) / Q; min(h, Q) / Q when every query
    has a different top-1, 1 when the hubs take every query. (Which of several items with
    equal N1 enter H does not change the sum.)
    """
    s = np.asarray(scores)
    if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 1:
        raise ValueError(f"scores must be [Q >= 1, G >= 1]; got shape {s.shape}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    counts = np.bincount(np.argmax(s, axis=1), minlength=s.shape[1])
    # Rounded first so that 0.01 * 700 (7.000000000000001 in floats) counts 7 items, not 8.
    h = max(1, int(np.ceil(round(fraction * s.shape[1], 9))))
    return float(np.sort(counts)[::-1][:h].sum() / s.shape[0])
