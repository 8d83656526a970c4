"""Ablation: the contrastive loss, softmax (CLIP) vs sigmoid (SigLIP) x its sharded
implementation (all_gather, ring, grouped), on the demo.

    vljax sweep --config configs/ablations/loss.py --workdir-root /tmp/vljax-sweeps/loss
    vljax sweep summarize /tmp/vljax-sweeps/loss

all_gather and ring compute the same loss (ring passes the text embeddings around the
devices instead of gathering them), so their rows agree up to float rounding; grouped with
group_size 1 takes negatives only from each device's own batch, so it differs from them once
there are several devices (e.g. XLA_FLAGS=--xla_force_host_platform_device_count=4 on a
CPU) and equals them on one. The sigmoid rows use the demo's SigLIP init (configs/demo.py
:sigmoid: scale 10, bias -10).
"""

from configs import demo
from vljax import sweep

KINDS = [{sweep.RECIPE_KEY: "configs/demo.py"}, {sweep.RECIPE_KEY: "configs/demo.py:sigmoid"}]
IMPLS = [
    {"loss.impl": "all_gather"},
    {"loss.impl": "ring"},
    {"loss.impl": "grouped", "loss.group_size": 1},  # 1 divides every device count
]


def get_config(arg=None):
    return demo.get_config(arg)


def get_sweep():
    return sweep.product(KINDS, IMPLS)
