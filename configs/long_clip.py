"""Long-CLIP (Zhang et al. 2024, arXiv 2403.15378): CLIP fine-tuned to read long captions.

`:demo` starts from the demo's CLIP (24 text positions; trained by
`vljax train --config configs/demo.py --workdir runs/demo`) and fine-tunes it on
`shapes_long` (2 x 2 grids of shapes whose long captions, about 30 tokens, name every shape
by its place) mixed half and half with the demo's own scenes. The text
position table keeps its first 20 rows and is stretched by 4 over the other 4 (36
positions); the long caption is matched to the image embedding, the short caption ("a red
circle, a blue square, ...") to its 32 leading principal components. Evals: long-caption
retrieval, and the demo's own shapes evals (what the stretching is meant to preserve).
`python benchmarks/long_clip.py` compares before and after.

    vljax train --config configs/demo.py --workdir runs/demo
    vljax train --config configs/long_clip.py:demo --workdir runs/long_clip
    vljax train --config configs/long_clip.py:tiny --workdir /tmp/long_clip   # no run needed
"""

import ml_collections

from configs import demo

LONG_EVAL = dict(type="retrieval", dataset="shapes_long:retrieval", key="shapes_long")


def get_config(arg=None):
    if arg not in ("demo", "tiny"):
        raise ValueError(f"configs/long_clip.py:{arg}: expected demo or tiny")
    c = demo.get_config()
    c.method = "long_clip"
    # Half long grids, half the demo's own scenes (their short caption is a summary of the
    # same kind): what the tower already reads well keeps being trained.
    c.data.train.dataset = "shapes_long=0.5,shapes=0.5"
    c.long_clip.update(keep_positions=20, stretch=4)
    c.loss.primary_components = 32
    if arg == "tiny":  # random towers read 36 positions from the start: no run to stretch
        demo.tiny(c)
        c.model.text.max_len = 36
        c.loss.primary_components = 8
        return c
    c.init_from = "runs/demo"
    c.tokenizer.model = "runs/demo/tokenizer.model"  # the text tower's own vocabulary
    c.model.text.max_len = 20 + (24 - 20) * 4  # the demo's 24 positions, stretched
    c.total_steps = 200
    c.checkpoint_every_steps = 100
    c.optimizer.learning_rate = 3e-4
    c.optimizer.warmup_steps = 20
    c.evals = ml_collections.ConfigDict(
        dict(shapes_long_retrieval=LONG_EVAL, **demo.get_config().evals.to_dict())
    )
    return c
