"""The jitted train step: exact accumulation of the contrastive batch (GradCache), and
full-size recipes lowering abstractly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.train.tiny import synthetic_batch, tiny_overrides
from vljax import sharding as shd
from vljax.config import build_config
from vljax.errors import ConfigError
from vljax.methods.method import LOSS_RNG
from vljax.train.aot import build_train_step
from vljax.train.state import build_parts, init_state
from vljax.train.step import (
    make_cached_accumulation,
    make_forward,
    make_outputs_loss,
    make_train_step,
)


def _setup(config):
    mesh = shd.make_mesh(config.mesh)
    return mesh, build_parts(config, mesh)


def _train(config, steps, batch_seed=0):
    """`steps` train steps of `config` on synthetic batches -> (losses, final params)."""
    mesh, parts = _setup(config)
    state = init_state(parts, config.model, 0)
    step = make_train_step(parts, config, mesh)
    losses = []
    for i in range(steps):
        local = synthetic_batch(config, config.batch_size, batch_seed + i)
        state, metrics = step(state, shd.global_batch(local, mesh, config.sharding))
        losses.append(float(metrics["loss"]))
    return losses, jax.tree.map(np.asarray, state.params)


def test_runs_that_differ_only_in_seed_share_one_compiled_init():
    """The seed's keys are arguments of the init program, not constants baked into it: a seed
    sweep's later runs take the first one's compiled init from the persistent compilation
    cache (tests/conftest.py sets one up), and still get params of their own."""
    config = build_config("configs/demo.py", tiny_overrides())
    mesh, parts = _setup(config)
    first = init_state(parts, config.model, 0)
    events = []
    on_event = lambda event, **kwargs: events.append(event)
    jax.monitoring.register_event_listener(on_event)
    try:
        second = init_state(parts, config.model, 12345)
    finally:
        jax.monitoring.unregister_event_listener(on_event)
    assert "/jax/compilation_cache/cache_hits" in events
    assert "/jax/compilation_cache/cache_misses" not in events
    for name in ("params", "rng"):
        pairs = zip(jax.tree.leaves(getattr(first, name)), jax.tree.leaves(getattr(second, name)))
        assert not all(np.array_equal(a, b) for a, b in pairs), name


def test_accumulated_step_equals_mean_of_microbatch_gradients():
    """accum_steps=2 (GradCache) gives the loss and the updated params of accum_steps=1 on the
    same batch: the loss sees every negative, not each microbatch its own. With SigLIP's
    bias (a scalar output that each microbatch pulls back half of) and a frozen image tower."""
    results = {}
    for accum in (1, 2):
        overrides = tiny_overrides(
            optimizer__accum_steps=accum,
            loss__kind="sigmoid",
            model__bias_init=-10.0,
            optimizer__frozen='["^img/encoder/"]',
        )
        results[accum] = _train(build_config("configs/demo.py", overrides), steps=1)
    (loss1, params1), (loss2, params2) = results[1], results[2]
    np.testing.assert_allclose(loss2, loss1, rtol=1e-6)
    for got, want in zip(jax.tree.leaves(params2), jax.tree.leaves(params1), strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-7)


@pytest.mark.heavy
def test_cached_accumulation_trains_like_the_whole_batch_for_every_loss_impl():
    """8 tiny-demo steps with accum_steps=4 have the losses of accum_steps=1 within 1e-5
    relative, for each loss impl (a wrong accumulation shows from the first step; the five
    compiles, not the steps, are this test's time). ring is exact, so its runs share
    all_gather's reference (tests/losses/test_loss_in_training.py compiles the same one);
    grouped (groups of 2 of the 8 devices, sigmoid) is another objective, with its own. On synthetic
    batches through the train step, with the ViT's patch embedding for the demo's conv stem:
    the data pipeline, tokenizer and stem add nothing here but seconds of the suite."""

    def losses(impl, accum, **extra):
        overrides = tiny_overrides(
            batch_size=32,
            model__image__stem="patch",
            optimizer__accum_steps=accum,
            loss__impl=impl,
            **extra,
        )
        return _train(build_config("configs/demo.py", overrides), steps=8)[0]

    whole_batch = losses("all_gather", 1)
    assert whole_batch[-1] < whole_batch[0]
    for impl in ("all_gather", "ring"):
        np.testing.assert_allclose(losses(impl, 4), whole_batch, rtol=1e-5, err_msg=impl)
    # Sigmoid with its bias: the program of test_loss_in_training.py's grouped run.
    sigmoid = dict(loss__kind="sigmoid", model__bias_init=-10.0, loss__group_size=2)
    grouped = {accum: losses("grouped", accum, **sigmoid) for accum in (1, 4)}
    np.testing.assert_allclose(grouped[4], grouped[1], rtol=1e-5, err_msg="grouped")


def test_cached_accumulation_redraws_each_microbatchs_masks_in_its_backward_pass():
    """With FLIP's patch dropout (random per microbatch), the cached gradients equal the direct
    gradient of the loss of the K microbatch forwards' outputs (each with its microbatch's
    key): the vjp re-run draws the masks the loss saw."""
    config = build_config(
        "configs/demo.py",
        tiny_overrides(optimizer__accum_steps=2, model__image__mask_ratio=0.5),
    )
    mesh, parts = _setup(config)
    method, accum = parts.method, 2
    params = init_state(parts, config.model, 0).params
    batch = shd.global_batch(synthetic_batch(config, config.batch_size), mesh, config.sharding)
    key, step = jax.random.key_data(jax.random.key(3)), jnp.int32(5)
    forward = make_forward(parts.model, config, mesh)
    outputs_loss = make_outputs_loss(method, parts.model, config, mesh)

    def direct_loss(p):
        outs = [
            forward(p, jax.tree.map(lambda x, k=k: x[k::accum], batch), method.rngs(key, step, k))
            for k in range(accum)
        ]
        interleave = lambda *xs: jnp.stack(xs, 1).reshape((-1,) + xs[0].shape[1:])
        outputs = {
            name: outs[0][name] if outs[0][name] is None or outs[0][name].ndim == 0
            else interleave(*(o[name] for o in outs))
            for name in outs[0]
        }  # fmt: skip
        return outputs_loss(outputs, batch, method.rngs(key, step)[LOSS_RNG])[0]

    want_loss, want = jax.jit(jax.value_and_grad(direct_loss))(params)
    cached = jax.jit(make_cached_accumulation(method, parts.model, config, mesh))
    (loss, _), grads = cached(params, batch, key, step)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    # Rounding, not another mask: within 1e-5 of the largest gradient.
    scale = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(want))
    for got, expected in zip(jax.tree.leaves(grads), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * scale)


def test_accumulation_refuses_terms_that_need_the_whole_batch():
    config = build_config(
        "configs/demo.py",
        tiny_overrides(optimizer__accum_steps=2, loss__terms='{"contrastive": 1, "tpm_cl": 1}'),
    )
    with pytest.raises(ConfigError, match=r"'tpm_cl' embeds .*accum_steps=1"):
        _setup(config)
    config = build_config("configs/demo.py", tiny_overrides(optimizer__accum_steps=4))
    with pytest.raises(ConfigError, match=r"16 / 4 = 4 is not divisible by the data-parallel"):
        _setup(config)


@pytest.mark.parametrize("recipe", ["configs/clip_vit_b16.py", "configs/siglip_vit_b16.py"])
def test_full_size_recipe_builds_and_lowers_abstractly(recipe):
    """ViT-B/16 recipes: params shard over 8 devices (FSDP) and the train step traces and
    lowers on abstract inputs; nothing of full size is allocated. The compile and its
    per-device memory are tests/test_compile.py's (`vljax compile`, 64 devices)."""
    config = build_config(recipe, [("batch_size", "8")])
    built = build_train_step(config)
    abstract = built.parts.abstract
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract.params))
    assert 1.4e8 < n_params < 2.2e8, n_params  # CLIP B/16 has ~150M, SigLIP B/16 ~200M
    sharded = [
        x for x in jax.tree.leaves(abstract.params) if x.sharding.spec and any(x.sharding.spec)
    ]
    assert len(sharded) > len(jax.tree.leaves(abstract.params)) // 2
    assert built.step.lower(abstract, built.batch) is not None
