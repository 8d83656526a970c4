"""DreamLIP's multi-positive sub-captions (Zheng et al. 2024, arXiv 2403.17007): the sentences
of a long caption are each a positive of the image's row, in one softmax (the 1-to-K loss of
configs/one_to_k.py, term one_to_k, with `data.train.multi_captions = "sentences"`).

Data: half `shapes_long_sentences` (2 x 2 grids captioned one sentence per shape, "top left a
big red circle. top right ..."), half the demo's own scenes (one sentence each, so their
other caption slot is absent: an all-PAD row, masked out of the loss). Each example gives up
to `data.train.captions_per_example` = 2 of its sentences, sampled with the example's seed
(DreamLIP samples a subset of its sub-captions too). Evals: the demo's shapes evals, and
retrieval of the grids by their whole four-sentence caption (28 pieces + EOS: a text longer
than any the tower trains on; 32 positions, of which training fills at most the first 20).

The towers, image size and schedule are `configs/demo.py:quickstart`'s (56 px, MLPs of 256),
run for 300 steps: every example's K captions go through the text tower, so a step costs
about twice the quickstart's, and the demo stays within 10 minutes on the slowest 2-core kind
(docs/methods.md has the figures).

    vljax train --config configs/multi_positive.py:demo --workdir runs/multi_positive
    vljax train --config configs/multi_positive.py:demo_one_sentence --workdir runs/mp_one
    vljax train --config configs/multi_positive.py:tiny --workdir /tmp/multi_positive

`:demo_one_sentence` is the baseline: the same data, towers and steps, with one of each
image's sentences per step (term sampled_caption) in place of all of them as positives.

Not implemented: DreamLIP's grouping loss between sub-captions and image patches, and its
MLLM-written long captions (the grids' captions are generated with the images).
"""

import ml_collections

from configs import demo

LONG_EVAL = dict(
    type="retrieval", dataset="shapes_long_sentences:retrieval", key="shapes_long_sentences"
)


TERMS = {"demo": "one_to_k", "tiny": "one_to_k", "demo_one_sentence": "sampled_caption"}


def get_config(arg=None):
    if arg not in TERMS:
        raise ValueError(f"configs/multi_positive.py:{arg}: expected {', '.join(TERMS)}")
    c = demo.get_config("quickstart")
    c.total_steps = 300
    c.method = "multi_caption"
    c.loss.terms = ml_collections.ConfigDict({TERMS[arg]: 1.0})
    c.data.train.dataset = "shapes_long_sentences=0.5,shapes=0.5"
    c.data.train.lang = "en"
    c.data.train.multi_captions = "sentences"
    c.data.train.captions_per_example = 2
    c.evals = ml_collections.ConfigDict(dict(shapes_long_retrieval=LONG_EVAL, **c.evals.to_dict()))
    if arg == "tiny":
        demo.tiny(c)
    c.model.text.max_len = 32  # the whole grid caption (29 with EOS), for the long retrieval eval
    return c
