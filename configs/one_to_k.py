"""1-to-K contrastive learning (Nie et al. 2024, arXiv 2406.18254): each image's captions in
all K languages are positives of its one row (term one_to_k, vljax/losses/multi_positive.py),
so no language is trained to sit closer to the image than another; evaluated with R@1 per
language and their Mean Rank Variance (MRV, `retrieval/shapes/mrv`), the paper's measure of
that consistency.

The bilingual demo of configs/m2_encoder.py (the quickstart's towers, data and steps, English
and Chinese captions, one tokenizer) with the term one_to_k; `:demo_one_language` is the paper's
baseline: one language per step (term sampled_caption), everything else equal.

    vljax train --config configs/one_to_k.py:demo --workdir runs/one_to_k
    vljax train --config configs/one_to_k.py:demo_one_language --workdir runs/one_to_k_one
    vljax train --config configs/one_to_k.py:tiny --workdir /tmp/one_to_k   # a smoke run

DreamLIP's multi-positive sub-captions use the same term: configs/multi_positive.py.
"""

import ml_collections

from configs import demo, m2_encoder

TERMS = {"demo": "one_to_k", "tiny": "one_to_k", "demo_one_language": "sampled_caption"}


def get_config(arg=None):
    if arg not in TERMS:
        raise ValueError(f"configs/one_to_k.py:{arg}: expected {', '.join(TERMS)}")
    c = m2_encoder.bilingual(demo.get_config("quickstart"))
    c.loss.terms = ml_collections.ConfigDict({TERMS[arg]: 1.0})
    if arg == "tiny":
        demo.tiny(c)
    return c
