"""TPM-CL (Jiang et al. 2023, arXiv 2309.11082): the triplet partial-margin loss on generated
fine-grained hard negatives, each caption with its most relevant pieces masked.

The quickstart CLIP (`configs/demo.py:quickstart`, what `make demo` trains) with the term
"tpm_cl" beside "contrastive" (the same towers, data and steps), so `:demo` against
`configs/demo.py:quickstart` shows what the triplet term changes.

    vljax train --config configs/tpm_cl.py:demo --workdir runs/tpm_cl
    vljax train --config configs/tpm_cl.py:tiny --workdir /tmp/tpm_cl   # a smoke run
"""

import ml_collections

from configs import demo


def get_config(arg=None):
    if arg not in ("demo", "tiny"):
        raise ValueError(f"configs/tpm_cl.py:{arg}: expected demo or tiny")
    c = add_tpm_cl(demo.get_config("quickstart"))
    if arg == "tiny":
        demo.tiny(c)
    return c


def add_tpm_cl(c):
    """The term "tpm_cl" beside "contrastive" (margin 0.2, the 30% most relevant pieces
    masked): also video_clip's `:demo_tpm_cl`."""
    c.loss.terms = ml_collections.ConfigDict({"contrastive": 1.0, "tpm_cl": 1.0})
    c.loss.tpm_margin = 0.2
    c.loss.tpm_mask_ratio = 0.3
    c.loss.tpm_masking = "relevance"
    return c
