"""Ablation: global batch 64 / 128 / 256 at equal examples seen, on the demo.

    vljax sweep --config configs/ablations/batch_size.py --workdir-root /tmp/vljax-sweeps/batch

Every run sees the demo's 128 x 400 = 51,200 examples: total_steps (and the warmup, in
examples) scale with 1 / batch. The learning rate stays the demo's; a larger batch also
gives each example more negatives in the contrastive loss.
"""

from configs import demo
from vljax import sweep

BATCH_SIZES = [64, 128, 256]


def get_config(arg=None):
    return demo.get_config(arg)


def get_sweep():
    base = demo.get_config()
    examples = base.batch_size * base.total_steps
    warmup_examples = base.batch_size * base.optimizer.warmup_steps
    return sweep.zip_(
        {
            "batch_size": BATCH_SIZES,
            "total_steps": [examples // b for b in BATCH_SIZES],
            "optimizer.warmup_steps": [warmup_examples // b for b in BATCH_SIZES],
        }
    )
