"""DreamLIP's multi-positive sub-captions (Zheng et al. 2024, arXiv 2403.17007): the sentences
of a long caption are each a positive of the image's row, in one softmax (the 1-to-K loss of
configs/one_to_k.py, term one_to_k, with `data.train.multi_captions = "sentences"`).

Data: half `shapes_long_sentences` (2 x 2 grids captioned one sentence per shape, "top left a
big red circle. top right ..."), half the demo's own scenes (one sentence each, so their
other caption slots are absent: all-PAD rows, masked out of the loss). Each example gives up
to `data.train.captions_per_example` = 4 of its sentences, sampled with the example's seed.
Evals: the demo's shapes evals, and retrieval of the grids by their whole four-sentence
caption (a text longer than any the tower trains on: 36 positions, of which training fills
at most the first 20).

    vljax train --config configs/multi_positive.py:demo --workdir runs/multi_positive
    vljax train --config configs/multi_positive.py:tiny --workdir /tmp/multi_positive

Not implemented: DreamLIP's grouping loss between sub-captions and image patches, and its
MLLM-written long captions (the grids' captions are generated with the images).
"""

import ml_collections

from configs import demo

LONG_EVAL = dict(
    type="retrieval", dataset="shapes_long_sentences:retrieval", key="shapes_long_sentences"
)


def get_config(arg=None):
    if arg not in ("demo", "tiny"):
        raise ValueError(f"configs/multi_positive.py:{arg}: expected demo or tiny")
    c = demo.get_config()
    c.method = "multi_caption"
    c.loss.terms = ml_collections.ConfigDict({"one_to_k": 1.0})
    c.data.train.dataset = "shapes_long_sentences=0.5,shapes=0.5"
    c.data.train.lang = "en"
    c.data.train.multi_captions = "sentences"
    c.data.train.captions_per_example = 4
    c.evals = ml_collections.ConfigDict(dict(shapes_long_retrieval=LONG_EVAL, **c.evals.to_dict()))
    if arg == "tiny":
        demo.tiny(c)
    c.model.text.max_len = 36  # the whole grid caption, for the long retrieval eval
    return c
