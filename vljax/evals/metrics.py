"""Retrieval and zero-shot metrics on embeddings (numpy; inputs may be jax arrays).

Ranks are tie-tolerant and order-independent: the rank of the right item is the number of
wrong items that score strictly higher, and recall@k counts rank < k. With several captions
per image (COCO and Flickr30k: 5), every caption is a text query ranked against the images,
and an image query's rank is that of the best-ranked of its captions. (A degenerate model
whose embeddings are all equal therefore scores perfectly: check for collapse elsewhere.)
Retrieval scores pairs with a method's similarity (dot products by default: pass
L2-normalised embeddings for cosine similarity); embeddings may be any pytree of arrays with
a leading example axis (a late-interaction method's tokens and mask). The gallery may be
videos (a video method's clip embeddings in the image's place): the ranking is the same, and
only the key names follow the gallery (`gallery="video"`: txt2video_r1, video2txt_r1, ...).
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
    if by_text:
        return text_to_image_ranks(img_emb, txt_emb, np.arange(n), similarity)
    return image_to_text_ranks(img_emb, txt_emb, np.arange(n), similarity)


def text_to_image_ranks(img_emb, txt_emb, text_image, similarity=dot):
    """int [M]: for each text query m, how many images score strictly higher than its image
    `text_image[m]` (0 = its image comes first)."""
    text_image = np.asarray(text_image, np.int64)
    m = num_rows(txt_emb)
    ranks = np.empty(m, np.int64)
    for start in range(0, m, _CHUNK):
        stop = min(start + _CHUNK, m)
        sims = np.asarray(similarity(img_emb, _rows(txt_emb, start, stop), "txt2img")).T
        right = sims[np.arange(len(sims)), text_image[start:stop]]
        ranks[start:stop] = np.sum(sims > right[:, None], axis=1)
    return ranks


def image_to_text_ranks(img_emb, txt_emb, text_image, similarity=dot):
    """int [N]: for each image query n, how many texts score strictly higher than the best of
    its own texts (those m with `text_image[m] == n`): 0 when one of its captions comes
    first. With one text per image this is the rank of that text."""
    text_image = np.asarray(text_image, np.int64)
    n = num_rows(img_emb)
    ranks = np.empty(n, np.int64)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        sims = np.asarray(similarity(_rows(img_emb, start, stop), txt_emb, "img2txt"))
        own = text_image[None, :] == np.arange(start, stop)[:, None]
        best = np.max(np.where(own, sims, -np.inf), axis=1)
        ranks[start:stop] = np.sum(sims > best[:, None], axis=1)
    return ranks


def retrieval_ranks(img_emb, txt_emb, text_image=None, similarity=dot) -> dict:
    """{"txt2img": int [M], "img2txt": int [N]} ranks (0-based, ties in the query's favour)
    for N images and M texts where text m captions image `text_image[m]` (default: text i
    captions image i, M = N). Every image needs at least one text."""
    n, m = num_rows(img_emb), num_rows(txt_emb)
    if text_image is None:
        if n != m:
            raise ValueError(f"need N images and N texts, got {n} and {m}")
        text_image = np.arange(n)
    text_image = np.asarray(text_image, np.int64)
    if text_image.shape != (m,) or (m and (text_image.min() < 0 or text_image.max() >= n)):
        raise ValueError(f"text_image must be {m} image indices in [0, {n})")
    if len(np.unique(text_image)) != n:
        raise ValueError("every image needs at least one text (text_image misses some)")
    return {
        "txt2img": text_to_image_ranks(img_emb, txt_emb, text_image, similarity),
        "img2txt": image_to_text_ranks(img_emb, txt_emb, text_image, similarity),
    }


def flatten_captions(caption_sets) -> tuple[list[str], np.ndarray]:
    """[[captions of image 0], [of image 1], ...] -> (texts [M], text_image int [M]): the
    texts in order and the image each captions, for `retrieval_ranks`."""
    texts = [t for captions in caption_sets for t in captions]
    text_image = np.repeat(np.arange(len(caption_sets)), [len(c) for c in caption_sets])
    return texts, text_image.astype(np.int64)


def median_rank(ranks) -> float:
    """The median 1-based rank, as the Karpathy-split papers report it (VSE++, CLIP-style
    evals): floor(median of the 0-based ranks) + 1."""
    return float(np.floor(np.median(np.asarray(ranks))) + 1)


def direction_names(gallery: str = "img") -> dict:
    """`retrieval_ranks`' directions -> their names in the result keys for a gallery of
    `gallery` items: "img" (txt2img, img2txt) or "video" (txt2video, video2txt)."""
    return {"txt2img": f"txt2{gallery}", "img2txt": f"{gallery}2txt"}


def recall_names(gallery: str = "img", ks=(1, 5, 10)) -> tuple[str, ...]:
    """The recall keys `retrieval_recall` returns: txt2img_r1, ..., img2txt_r10."""
    return tuple(f"{d}_r{k}" for d in direction_names(gallery).values() for k in ks)


def retrieval_recall(
    img_emb, txt_emb, ks=(1, 5, 10), similarity=dot, text_image=None, gallery="img"
):
    """Recall@k both ways for N images and their texts.

    img_emb: [N, ...], txt_emb: [M, ...] (pytrees of arrays with N / M rows); text m captions
    image `text_image[m]` (default: M = N and text i captions image i). similarity(images,
    texts, direction) -> [n_images, n_texts] scores, direction "txt2img" when texts are the
    queries. Returns {"txt2img_r1": ..., "img2txt_r1": ..., ...} (floats in [0, 1]): txt2img
    ranks the N images for each of the M texts (a hit when its image is in the top k),
    img2txt ranks the M texts for each image (a hit when any of its texts is in the top k).
    `gallery` names the image side in the keys (`direction_names`: "video" gives
    txt2video_r1, video2txt_r1, ...).
    """
    ranks = retrieval_ranks(img_emb, txt_emb, text_image, similarity)
    names = direction_names(gallery)
    return {f"{names[d]}_r{k}": float(np.mean(r < k)) for d, r in ranks.items() for k in ks}


def retrieval_metrics(
    img_emb, txt_emb, text_image=None, similarity=dot, ks=(1, 5, 10), gallery="img"
):
    """`retrieval_recall`'s keys plus `txt2img_medr` and `img2txt_medr` (`median_rank`):
    what the retrieval eval reports (`gallery="video"`: txt2video_r1, ..., video2txt_medr)."""
    ranks = retrieval_ranks(img_emb, txt_emb, text_image, similarity)
    names = direction_names(gallery)
    out = {f"{names[d]}_r{k}": float(np.mean(r < k)) for d, r in ranks.items() for k in ks}
    out.update({f"{names[d]}_medr": median_rank(r) for d, r in ranks.items()})
    return out


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


def zeroshot_ranks(img_emb, class_emb, labels):
    """int [N]: how many of the [C, D] `class_emb` score strictly higher than each image's
    true class `labels[i]` (0 = top-1; top-k accuracy is `mean(ranks < k)`)."""
    return _label_ranks(img_emb, class_emb, labels)


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
