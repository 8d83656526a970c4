"""CoCa (Yu et al. 2022, arXiv 2205.01917): a contrastive captioner on the demo's shapes.

The demo's towers, the text tower doubling as CoCa's unimodal decoder (with a CLS token for
the contrastive embedding) and a one-layer multimodal decoder that captions from 16 pooled
image queries. Evals: zero-shot and retrieval like the demo, and greedy captioning scored by
corpus BLEU-4 against the retrieval split's captions (`captioning/shapes/bleu4`).

    vljax train --config configs/coca.py:demo --workdir runs/coca
    vljax caption --workdir runs/coca --images a.png b.jpg
    vljax train --config configs/coca.py:tiny --workdir /tmp/coca     # a smoke run
"""

from configs import demo


def get_config(arg=None):
    if arg not in ("demo", "tiny"):
        raise ValueError(f"configs/coca.py:{arg}: expected demo or tiny")
    c = demo.get_config()
    c.method = "coca"
    c.model.decoder.update(depth=1, pool_queries=16)
    c.evals.shapes_captioning = dict(type="captioning", dataset="shapes:retrieval", key="shapes")
    if arg == "tiny":
        demo.tiny(c)
        c.model.decoder.pool_queries = 4
    return c
