"""LiT (Zhai et al. 2022, arXiv 2111.07991): a locked pretrained image tower, a text tower
trained to match it.

The image tower is taken from `init_from` (a vljax run directory or a folder written by
`vljax import`; `init_from_include` keeps only its `img/` params, the text tower starts fresh)
and locked: `optimizer.frozen` gives it no optimizer state and no update, and the train step
computes no gradient through it (its backward pass is not in the compiled step).

    vljax train --config configs/demo.py --workdir runs/demo
    vljax train --config configs/lit.py:demo --workdir runs/lit
    vljax train --config configs/lit.py:tiny --workdir /tmp/lit   # a random locked tower
"""

from configs import demo

LOCKED = ["^img/"]


def get_config(arg=None):
    if arg not in ("demo", "tiny"):
        raise ValueError(f"configs/lit.py:{arg}: expected demo or tiny")
    c = demo.get_config()
    c.optimizer.frozen = LOCKED
    if arg == "tiny":
        return demo.tiny(c)  # the locked tower is a random one: a smoke run needs no run
    c.init_from = "runs/demo"  # vljax train --config configs/demo.py --workdir runs/demo
    c.init_from_include = LOCKED
    c.total_steps = 200  # only the text tower learns: it aligns to a fixed image space fast
    c.optimizer.warmup_steps = 20
    return c
