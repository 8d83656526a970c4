"""LiT: the image tower taken from a run and locked; no gradient through it, no update."""

import jax
import numpy as np

from tests.methods.runs import SMOKE_STEPS
from vljax import sharding as shd
from vljax.config import build_config
from vljax.train.checkpoint import load_run
from vljax.train.init_from import initial_params
from vljax.train.state import build_parts, init_state
from vljax.train.step import make_train_step


def _batch(config, mesh):
    rng = np.random.default_rng(0)
    size, length = config.model.image.image_size, config.model.text.max_len
    tokens = rng.integers(3, 200, (config.batch_size, length)).astype(np.int32)
    tokens[:, -1] = 1
    local = {
        "image": rng.integers(0, 256, (config.batch_size, size, size, 3), dtype=np.uint8),
        "tokens": tokens,
    }
    return shd.global_batch(local, mesh, config.sharding)


def _step(config):
    mesh = shd.make_mesh(config.mesh)
    parts = build_parts(config, mesh)
    return parts, mesh, make_train_step(parts, config, mesh)


def test_locked_tower_is_unchanged_and_its_backward_pass_is_gone():
    # The smoke run's step count (tests/methods/test_tiny_methods.py): the locked step is the
    # program it compiled, read from the session's compile cache when it ran first.
    steps = ("total_steps", str(SMOKE_STEPS))
    locked = build_config("configs/lit.py:tiny", [steps])
    free = build_config("configs/lit.py:tiny", [steps, ("optimizer.frozen", "[]")])
    parts, mesh, step = _step(locked)
    batch = _batch(locked, mesh)
    free_parts, _, free_step = _step(free)
    # XLA's count on the lowered steps (the abstract states suffice): the image tower's
    # backward (about 2x its forward) is not even emitted, let alone left to XLA to drop.
    flops_locked = step.lower(parts.abstract, batch).cost_analysis()["flops"]
    flops_free = free_step.lower(free_parts.abstract, batch).cost_analysis()["flops"]
    print(f"step FLOPs: locked {flops_locked:.4g}, trained {flops_free:.4g}")
    assert flops_locked < 0.8 * flops_free, (flops_locked, flops_free)

    state = init_state(parts, 0)
    before = jax.tree.map(np.asarray, state.params)
    for _ in range(2):
        state, metrics = step(state, batch)
    after = jax.tree.map(np.asarray, state.params)
    for a, b in zip(jax.tree.leaves(before["img"]), jax.tree.leaves(after["img"]), strict=True):
        np.testing.assert_array_equal(a, b)
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(before["txt"]), jax.tree.leaves(after["txt"]), strict=True)
    ]
    assert all(changed)
    assert np.isfinite(float(metrics["loss"]))


def test_init_from_a_run_takes_only_the_included_tower(full_run):
    overrides = [
        ("init_from", str(full_run)),
        ("init_from_include", "['^img/']"),
        ("model.text.depth", "2"),  # another text tower than the run's: not taken
    ]
    config = build_config(str(full_run / "config.json"), overrides)
    parts = build_parts(config, shd.make_mesh(config.mesh))
    state = init_state(parts, 7, initial_params(config), config.init_from_include)
    run = load_run(str(full_run)).params
    for a, b in zip(jax.tree.leaves(run["img"]), jax.tree.leaves(state.params["img"]), strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))
    assert "block_1" in str(jax.tree_util.tree_structure(state.params["txt"]))
