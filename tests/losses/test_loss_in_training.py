"""The demo config trains a few steps with every loss impl: ring gives the same losses as
all_gather, grouped with one group of every device too, and grouped with small groups (a
different objective) trains to finite losses. Uses the trainer's own jitted step.

Batch 32: all_gather's and grouped's steps are the programs of
tests/train/test_step.py's accum_steps=1 references, read from the session's compile cache
when that heavy test ran first."""

import functools

import jax
import numpy as np

from tests.train.tiny import tiny_overrides
from vljax import sharding as shd
from vljax.config import build_config
from vljax.train.state import build_parts, init_state
from vljax.train.step import make_train_step

STEPS = 3


@functools.cache
def train_losses(kind, impl, **loss):
    changes = {"loss__kind": kind, "loss__impl": impl, "batch_size": 32}
    changes.update({f"loss__{k}": v for k, v in loss.items()})
    if kind == "sigmoid":
        changes["model__bias_init"] = -10.0
    config = build_config("configs/demo.py", tiny_overrides(**changes))
    mesh = shd.make_mesh(config.mesh)
    parts = build_parts(config, mesh)
    state = init_state(parts, 0)
    step = make_train_step(parts, config, mesh)
    rng = np.random.default_rng(0)
    size, length = config.model.image.image_size, config.model.text.max_len
    losses = []
    for _ in range(STEPS):
        tokens = rng.integers(3, 200, (config.batch_size, length)).astype(np.int32)
        tokens[:, -1] = 1  # EOS
        images = rng.uniform(-1, 1, (config.batch_size, size, size, 3)).astype(np.float32)
        batch = shd.global_batch(dict(image=images, tokens=tokens), mesh, config.sharding)
        state, metrics = step(state, batch)
        losses.append(float(jax.device_get(metrics["loss"])))
    losses = np.array(losses)
    losses.flags.writeable = False
    return losses


def test_ring_trains_like_all_gather():
    """Softmax only, to keep the suite fast: each train step takes a compile of its own; the
    sigmoid ring's gradients are checked against the dense reference in test_ring.py."""
    want = train_losses("softmax", "all_gather")
    got = train_losses("softmax", "ring", chunk=3)  # 4 rows per device: ragged tiles
    assert np.all(np.isfinite(want))
    np.testing.assert_allclose(got, want, rtol=2e-5)


def test_grouped_trains():
    """Groups of 2 of the 8 devices, sigmoid: a different objective (fewer negatives), so only
    finite losses here; tests/losses/test_grouped.py checks its value and gradients."""
    assert np.all(np.isfinite(train_losses("sigmoid", "grouped", group_size=2)))
