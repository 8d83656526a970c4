"""Retrieval and zero-shot metrics on embeddings (numpy; inputs may be jax arrays).

Ranks are tie-tolerant and order-independent: the rank of the right item is the number of
wrong items that score strictly higher, and recall@k counts rank < k. (A degenerate model
whose embeddings are all equal therefore scores perfectly: check for collapse elsewhere.)
Retrieval scores pairs with a method's similarity (dot products by default: pass
L2-normalised embeddings for cosine similarity); embeddings may be any pytree of arrays with
a leading example axis (a late-interaction method's tokens and mask).
"""

import jax
import numpy as np
import sacrebleu

from vljax.models.layers import l2_normalize

# Rows of the [N, N] similarity matrix computed at a time, to bound memory for large N.
_CHUNK = 1024


def dot(img_emb, txt_emb, direction=None):
    return np.asarray(img_emb, np.float32) @ np.asarray(txt_emb, np.float32).T


def _rows(tree, start, stop):
    return jax.tree.map(lambda x: x[start:stop], tree)


def num_rows(tree) -> int:
    return len(jax.tree.leaves(tree)[0])


def ranks_of_diagonal(img_emb, txt_emb, similarity, by_text):
    """For each query i (a text when by_text, else an image): how many keys j score
    strictly higher than key i."""
    n = num_rows(img_emb)
    ranks = np.empty(n, np.int64)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        if by_text:
            sims = np.asarray(similarity(img_emb, _rows(txt_emb, start, stop), "txt2img")).T
        else:
            sims = np.asarray(similarity(_rows(img_emb, start, stop), txt_emb, "img2txt"))
        rows = np.arange(len(sims))
        right = sims[rows, start + rows]
        ranks[start:stop] = np.sum(sims > right[:, None], axis=1)
    return ranks


def retrieval_recall(img_emb, txt_emb, ks=(1, 5, 10), similarity=dot):
    """Recall@k both ways for N image-text pairs where pair i matches i.

    img_emb, txt_emb: [N, ...] (pytrees of arrays with N rows); similarity(images, texts,
    direction) -> [n_images, n_texts] scores, direction "txt2img" when texts are the queries.
    Returns {"txt2img_r1": ..., "img2txt_r1": ..., ...} (floats in [0, 1]); txt2img ranks
    images for each text query, img2txt texts for each image.
    """
    if num_rows(img_emb) != num_rows(txt_emb):
        raise ValueError(
            f"need N images and N texts, got {num_rows(img_emb)} and {num_rows(txt_emb)}"
        )
    ranks = {
        "txt2img": ranks_of_diagonal(img_emb, txt_emb, similarity, by_text=True),
        "img2txt": ranks_of_diagonal(img_emb, txt_emb, similarity, by_text=False),
    }
    return {f"{d}_r{k}": float(np.mean(r < k)) for d, r in ranks.items() for k in ks}


def ranks_of_labels(logits, labels):
    """How many columns of [N, C] `logits` score strictly higher than each row's right column
    `labels[i]` (retrieval from a score matrix: labels = arange(N))."""
    right = logits[np.arange(len(logits)), labels]
    return np.sum(logits > right[:, None], axis=1)


def _label_ranks(img_emb, class_emb, labels):
    labels = np.asarray(labels, np.int64)
    img_emb = np.asarray(img_emb, np.float32)
    class_emb = np.asarray(class_emb, np.float32)
    if len(labels) != len(img_emb):
        raise ValueError(f"{len(img_emb)} images but {len(labels)} labels")
    ranks = np.empty(len(labels), np.int64)
    for start in range(0, len(labels), _CHUNK):
        logits = img_emb[start : start + _CHUNK] @ class_emb.T
        ranks[start : start + len(logits)] = ranks_of_labels(
            logits, labels[start : start + len(logits)]
        )
    return ranks


def zeroshot_scores(img_emb, encode_texts, classnames, templates, similarity):
    """[N, C] image-class scores averaged over the prompt templates: zero-shot for methods
    whose embeddings are not vectors to average (`Method.prompt_ensemble == "score"`).

    similarity(images, texts, "img2txt") -> [N, M]; encode_texts: list[str] -> embeddings.
    """
    if not classnames or not templates:
        raise ValueError("need at least one class name and one template")
    total = 0.0
    for template in templates:
        prompts = encode_texts([template.format(c) for c in classnames])
        total = total + np.asarray(similarity(img_emb, prompts, "img2txt"), np.float64)
    return total / len(templates)


def scores_topk(scores, labels, k):
    """Fraction of rows of [N, C] `scores` whose true class is among the k best."""
    labels = np.asarray(labels, np.int64)
    if len(labels) != len(scores):
        raise ValueError(f"{len(scores)} images but {len(labels)} labels")
    return float(np.mean(ranks_of_labels(np.asarray(scores), labels) < k))


def zeroshot_topk(img_emb, class_emb, labels, k):
    """Fraction of images whose true class is among the k best-scoring classes.

    img_emb: [N, D]; class_emb: [C, D] (see `class_embeddings`); labels: int [N] in [0, C).
    """
    return float(np.mean(_label_ranks(img_emb, class_emb, labels) < k))


def zeroshot_top1(img_emb, class_emb, labels):
    return zeroshot_topk(img_emb, class_emb, labels, 1)


def zeroshot_top5(img_emb, class_emb, labels):
    return zeroshot_topk(img_emb, class_emb, labels, 5)


def class_embeddings(encode_texts, classnames, templates, batch_size=256):
    """Zero-shot classifier weights, [C, D] float32 with unit rows.

    encode_texts: list[str] -> [n, D]. Each class's prompts (`template.format(classname)`)
    are encoded in batches of at most `batch_size` texts, L2-normalised, averaged over the
    templates, and the mean is normalised again.
    """
    if not classnames or not templates:
        raise ValueError("need at least one class name and one template")
    texts = [t.format(c) for c in classnames for t in templates]
    chunks = [
        np.asarray(encode_texts(texts[i : i + batch_size]), np.float32)
        for i in range(0, len(texts), batch_size)
    ]
    emb = np.asarray(l2_normalize(np.concatenate(chunks, axis=0)))
    emb = emb.reshape(len(classnames), len(templates), -1).mean(axis=1)
    return np.asarray(l2_normalize(emb))


def corpus_bleu4(hypotheses, references, tokenize="13a") -> float:
    """Corpus BLEU-4 in [0, 1] (sacrebleu's, divided by 100) of one hypothesis per image
    against its reference caption; `tokenize` is sacrebleu's ("13a"; "zh" for Chinese)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} captions but {len(references)} references")
    bleu = sacrebleu.metrics.BLEU(tokenize=tokenize)
    return float(bleu.corpus_score(list(hypotheses), [list(references)]).score / 100)
