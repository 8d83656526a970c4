"""SyCoCa (Ma et al. 2024, arXiv 2401.02137): CoCa plus text-guided masked image modeling.

configs/coca.py's model and evals; the image patches most relevant to the caption (attentive
masking, `model.mim`, configs/common.py) are masked and reconstructed from the visible ones
and the text.

    vljax train --config configs/sycoca.py:demo --workdir runs/sycoca
    python benchmarks/sycoca_masking.py --workdir runs/sycoca     # masked patches on shapes
    vljax train --config configs/sycoca.py:tiny --workdir /tmp/sycoca   # a smoke run
"""

from configs import coca


def get_config(arg=None):
    if arg not in ("demo", "tiny"):
        raise ValueError(f"configs/sycoca.py:{arg}: expected demo or tiny")
    c = coca.get_config(arg)
    c.method = "sycoca"
    return c
