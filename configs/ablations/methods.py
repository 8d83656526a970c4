"""Ablation: every method's demo recipe (CLIP, SigLIP, FLIP, LiT, FILIP, CoCa, SyCoCa,
Long-CLIP, NegNCE, TPM-CL, M2-Encoder, 1-to-K), one run each, on the demo's data.

    vljax sweep --config configs/ablations/methods.py --workdir-root /tmp/vljax-sweeps/methods
    vljax sweep --config configs/ablations/methods.py --workdir-root ... --only clip siglip

Each run starts from its own recipe (the special key sweep.RECIPE_KEY) and is named after
its method (sweep.NAME_KEY). The recipes are benchmarks/methods.py's DEMOS, their one list.
LiT and Long-CLIP start from runs/demo: run
`vljax train --config configs/demo.py --workdir runs/demo` first. Run from the repository root.
"""

from benchmarks.methods import DEMOS
from configs import demo
from vljax import sweep

SIGLIP = "configs/demo.py:sigmoid"  # the demo with SigLIP's loss and init


def get_config(arg=None):
    return demo.get_config(arg)


def get_sweep():
    recipes = {**DEMOS, "siglip": SIGLIP}
    return [{sweep.NAME_KEY: name, sweep.RECIPE_KEY: spec} for name, spec in recipes.items()]
