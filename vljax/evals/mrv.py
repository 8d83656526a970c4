"""Mean Rank Variance (MRV, the 1-to-K paper, arXiv 2406.18254): how consistently a model
retrieves across languages.

On a multilingual retrieval set where every image has one caption in each of K languages,
let ranks[k, n] be the rank of the correct match of instance n when the query (or the
gallery) is in language k. MRV is the variance over the K languages of that rank, averaged
over the N instances:

  MRV = mean_n Var_k ranks[k, n]        (population variance: np.var(ranks, axis=0))

0 when every language ranks every instance's match equally well. Ranks follow the tie rule of
vljax/evals/metrics.py: the number of wrong items scoring strictly higher (0 = first).
"""

from collections.abc import Mapping

import numpy as np

from vljax.evals.metrics import dot, num_rows, ranks_of_diagonal


def mean_rank_variance(ranks) -> float:
    """MRV of int ranks [K, N] (language k, instance n): mean over n of the population
    variance over k."""
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[0] < 1 or ranks.shape[1] < 1:
        raise ValueError(f"ranks must be [K, N] with K, N >= 1; got shape {ranks.shape}")
    if not np.issubdtype(ranks.dtype, np.integer):
        raise ValueError(f"ranks must be integers; got dtype {ranks.dtype}")
    if np.any(ranks < 0):
        raise ValueError("ranks must be >= 0 (0 = the correct match comes first)")
    return float(np.mean(np.var(ranks.astype(np.float64), axis=0)))


def _ranks_by_language(img_emb, txt_emb_by_lang, similarity, by_text):
    if not isinstance(txt_emb_by_lang, Mapping) or not txt_emb_by_lang:
        raise ValueError("txt_emb_by_lang must be a non-empty dict {language: text embeddings}")
    n = num_rows(img_emb)
    for lang, txt in txt_emb_by_lang.items():
        if num_rows(txt) != n:
            raise ValueError(f"need N = {n} texts per language; {lang!r} has {num_rows(txt)}")
    return np.stack(
        [
            ranks_of_diagonal(img_emb, txt, similarity, by_text=by_text)
            for txt in txt_emb_by_lang.values()
        ]
    )


def text_to_image_ranks(img_emb, txt_emb_by_lang, similarity=dot):
    """int [K, N]: for each language k (in the dict's order) and text query n, the rank of
    image n among the N images.

    img_emb: [N, ...] (a pytree of arrays with N rows); txt_emb_by_lang: {language: [N, ...]},
    text n of every language captioning image n; similarity(images, texts, direction) ->
    [n_images, n_texts] scores (see metrics.retrieval_recall).
    """
    return _ranks_by_language(img_emb, txt_emb_by_lang, similarity, by_text=True)


def image_to_text_ranks(img_emb, txt_emb_by_lang, similarity=dot):
    """int [K, N]: for each language k (in the dict's order) and image query n, the rank of
    text n among the N texts of language k."""
    return _ranks_by_language(img_emb, txt_emb_by_lang, similarity, by_text=False)
