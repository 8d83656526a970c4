"""The jitted train step: microbatch accumulation, and full-size recipes compiling abstractly."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.train.tiny import tiny_overrides
from vljax import sharding as shd
from vljax.config import build_config
from vljax.train.state import build_parts, init_state
from vljax.train.step import make_loss_fn, make_train_step


def _setup(config):
    mesh = shd.make_mesh(config.mesh)
    return mesh, build_parts(config, mesh)


def _batch(config, n, seed=0):
    rng = np.random.default_rng(seed)
    size, length = config.model.image.image_size, config.model.text.max_len
    tokens = rng.integers(3, 200, (n, length)).astype(np.int32)
    tokens[:, -1] = 1  # EOS
    return {
        "image": rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32),
        "tokens": tokens,
    }


def test_accumulated_step_equals_mean_of_microbatch_gradients():
    """accum_steps=2 must apply the mean of the two microbatches' gradients (rows taken
    with stride 2), computed here one microbatch at a time on the host."""
    config = build_config("configs/demo.py", tiny_overrides(optimizer__accum_steps=2))
    mesh, parts = _setup(config)
    tx = parts.tx
    state = init_state(parts, config.model, 0)
    params0 = jax.tree.map(np.asarray, state.params)
    local = _batch(config, config.batch_size)

    loss_fn = make_loss_fn(parts.method, parts.model, config, mesh)
    grad_fn = jax.jit(jax.grad(lambda p, b: loss_fn(p, b, {})[0]))
    grads = []
    for offset in range(2):
        micro = {k: v[offset::2] for k, v in local.items()}
        micro = shd.global_batch(micro, mesh, config.sharding)
        grads.append(grad_fn(state.params, micro))
    mean = jax.tree.map(lambda a, b: (np.asarray(a) + np.asarray(b)) / 2, *grads)
    updates, _ = tx.update(mean, tx.init(params0), params0)
    expected = optax.apply_updates(params0, updates)

    step = make_train_step(parts, config, mesh)
    state, metrics = step(state, shd.global_batch(local, mesh, config.sharding))
    for got, want in zip(jax.tree.leaves(state.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-4, atol=2e-6)
    assert np.isfinite(float(metrics["loss"]))


@pytest.mark.parametrize(
    "recipe,compile", [("configs/clip_vit_b16.py", True), ("configs/siglip_vit_b16.py", False)]
)
def test_full_size_recipe_builds_and_compiles_abstractly(recipe, compile):
    """ViT-B/16 recipes: params shard over 8 devices (FSDP) and the train step traces and
    lowers on abstract inputs; nothing of full size is allocated. One recipe is also compiled
    for its per-device memory (each compile of a B/16 step costs about 10 s of the suite)."""
    config = build_config(recipe, [("batch_size", "8")])
    mesh, parts = _setup(config)
    abstract = parts.abstract
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract.params))
    assert 1.4e8 < n_params < 2.2e8, n_params  # CLIP B/16 has ~150M, SigLIP B/16 ~200M
    sharded = [
        x for x in jax.tree.leaves(abstract.params) if x.sharding.spec and any(x.sharding.spec)
    ]
    assert len(sharded) > len(jax.tree.leaves(abstract.params)) // 2
    size, length = config.model.image.image_size, config.model.text.max_len
    batch_sharding = shd.batch_sharding(mesh, config.sharding)
    batch = {
        "image": jax.ShapeDtypeStruct((8, size, size, 3), jnp.float32, sharding=batch_sharding),
        "tokens": jax.ShapeDtypeStruct((8, length), jnp.int32, sharding=batch_sharding),
    }
    step = make_train_step(parts, config, mesh)
    lowered = step.lower(abstract, batch)
    if not compile:
        return
    memory = lowered.compile().memory_analysis()
    # Per-device argument bytes: the fp32 params + 2 Adam moments split 8 ways (plus slack).
    assert memory.argument_size_in_bytes < 3 * 4 * n_params / 8 * 1.3
