"""NegNCE (Jiang et al. 2023, arXiv 2309.11082): InfoNCE plus an explicit term on the hard
negatives of each batch, the ones that score above their anchor's positive.

The quickstart CLIP (`configs/demo.py:quickstart`, what `make demo` trains) with the term
"negnce" in place of "contrastive" (the same towers, data and steps), so `:demo` against
`configs/demo.py:quickstart` shows what the hard-negative term changes.

    vljax train --config configs/negnce.py:demo --workdir runs/negnce
    vljax train --config configs/negnce.py:tiny --workdir /tmp/negnce   # a smoke run
"""

import ml_collections

from configs import demo


def get_config(arg=None):
    if arg not in ("demo", "tiny"):
        raise ValueError(f"configs/negnce.py:{arg}: expected demo or tiny")
    c = use_negnce(demo.get_config("quickstart"))
    if arg == "tiny":
        demo.tiny(c)
    return c


def use_negnce(c):
    """The term "negnce" in place of "contrastive" (margin 0, weight 1): also video_clip's
    `:demo_negnce`."""
    c.loss.terms = ml_collections.ConfigDict({"negnce": 1.0})
    c.loss.negnce_margin = 0.0
    c.loss.negnce_weight = 1.0
    return c
