"""Multilingual retrieval: a retrieval entry with `langs` (XM3600's 36 languages, the demo's
en/zh) scored in each language, averaged over the languages, and their Mean Rank Variance.

```python
config.evals.xm3600 = dict(type="retrieval", dataset="tfds:xm3600:test", langs="all")
```

Per language L, the images with at least one caption in L and all their L captions, by the
multi-caption protocol of vljax/evals/metrics.py (each caption a text->image query; an image
query hits when any of its L captions is in the top K): `retrieval/<key>/<L>/txt2img_r1`,
`_r5`, `_r10`, `img2txt_r1`..., `txt2img_medr`, `img2txt_medr`. An image without captions in
L is left out of L's queries and gallery. Means over the languages (unweighted):
`retrieval/<key>/txt2img_r1_mean`, ... for the six recalls. `retrieval/<key>/mrv`: Mean Rank
Variance (vljax/evals/mrv.py) over the images captioned in every language, of the text->image
rank of each image's first caption in each language among those images (absent when no image
has every language). A video set (`gallery="video"`) names its keys txt2video_r1, ...
"""

import jax
import numpy as np

from vljax.evals import metrics, mrv


def take_rows(tree, rows):
    return jax.tree.map(lambda x: x[rows], tree)


def multilingual_retrieval(
    key: str, captions_by_lang: dict, image_emb, encoder, gallery: str = "img"
) -> dict:
    """The keys above. captions_by_lang: {lang: [captions of image i]} aligned with the rows
    of image_emb (a pytree); encoder: encode_texts and similarity as in vljax/evals/run.py;
    gallery: what image_emb embeds, for the key names (`metrics.direction_names`)."""
    out, first_emb = {}, {}
    for lang, caption_sets in captions_by_lang.items():
        rows = np.flatnonzero([len(c) > 0 for c in caption_sets])
        texts, text_image = metrics.flatten_captions([caption_sets[i] for i in rows])
        text_emb = encoder.encode_texts(texts)
        scores = metrics.retrieval_metrics(
            take_rows(image_emb, rows),
            text_emb,
            text_image,
            similarity=encoder.similarity,
            gallery=gallery,
        )
        out.update({f"retrieval/{key}/{lang}/{m}": float(v) for m, v in scores.items()})
        # The first caption of every image (rows in order), indexed by image for the MRV.
        firsts = np.full(len(caption_sets), -1)
        firsts[rows] = np.searchsorted(text_image, np.arange(len(rows)))
        first_emb[lang] = (text_emb, firsts)
    for m in metrics.recall_names(gallery):
        out[f"retrieval/{key}/{m}_mean"] = float(
            np.mean([out[f"retrieval/{key}/{lang}/{m}"] for lang in captions_by_lang])
        )
    every = np.flatnonzero(np.all([f >= 0 for _, f in first_emb.values()], axis=0))
    if len(every):
        by_lang = {lang: take_rows(t, f[every]) for lang, (t, f) in first_emb.items()}
        ranks = mrv.text_to_image_ranks(take_rows(image_emb, every), by_lang, encoder.similarity)
        out[f"retrieval/{key}/mrv"] = mrv.mean_rank_variance(ranks)
    return out
