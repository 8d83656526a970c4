"""FLIP (Li et al. 2023, arXiv 2212.00794): CLIP trained with random patch dropout.

Each training image keeps a random half of its patch tokens (`model.image.mask_ratio`), so
the image encoder's transformer costs about half; evals and export see every patch. The
paper's optional unmasked tuning at the end is a second, short run started from this one
with `--config.init_from=WORKDIR --config.model.image.mask_ratio=0`.

    vljax train --config configs/flip.py:demo --workdir runs/flip      # shapes, 64 px
    vljax train --config configs/flip.py:tiny --workdir /tmp/flip      # a smoke run

Speed at mask ratio 0 / 0.5 / 0.75: `python benchmarks/flip.py` (docs/methods.md).
"""

from configs import demo


def get_config(arg=None):
    if arg not in ("demo", "tiny"):
        raise ValueError(f"configs/flip.py:{arg}: expected demo or tiny")
    c = demo.get_config()
    c.model.image.mask_ratio = 0.5
    if arg == "tiny":
        demo.tiny(c)
    return c
