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
from vljax.methods import get_method
from vljax.methods.method import LOSS_RNG
from vljax.train.aot import build_train_step
from vljax.train.state import build_parts, init_state
from vljax.train.step import (
    make_cached_accumulation,
    make_forward,
    make_loss_fn,
    make_outputs_loss,
    make_train_step,
)


def _setup(config):
    mesh = shd.make_mesh(config.mesh)
    return mesh, build_parts(config, mesh)


def _train(config, steps, batch_seed=0):
    """`steps` train steps of `config` on synthetic batches -> (losses, final params)."""
    mesh, parts = _setup(config)
    state = init_state(parts, 0)
    step = make_train_step(parts, config, mesh)
    losses = []
    for i in range(steps):
        local = synthetic_batch(config, config.batch_size, batch_seed + i)
        state, metrics = step(state, shd.global_batch(local, mesh, config.sharding))
        losses.append(float(metrics["loss"]))
    return losses, jax.tree.map(np.asarray, state.params)


def test_runs_that_differ_only_in_seed_share_one_compiled_init_and_one_model_trace(
    monkeypatch,
):
    """The seed's keys are arguments of the init program, not constants baked into it: a seed
    sweep's later runs take the first one's compiled init from the persistent compilation
    cache (tests/conftest.py sets one up), and still get params of their own. The model is
    traced once for the abstract shapes and both inits (flax calls the module's __call__ once
    per trace of its init)."""
    config = build_config("configs/demo.py", tiny_overrides())
    model_class = type(get_method(config.method).build_model(config.model))
    traces = []
    call = model_class.__call__
    monkeypatch.setattr(model_class, "__call__", lambda *a, **k: traces.append(1) or call(*a, **k))
    mesh, parts = _setup(config)
    first = init_state(parts, 0)
    events = []
    on_event = lambda event, **kwargs: events.append(event)
    jax.monitoring.register_event_listener(on_event)
    try:
        second = init_state(parts, 12345)
    finally:
        jax.monitoring.unregister_event_listener(on_event)
    assert "/jax/compilation_cache/cache_hits" in events
    assert "/jax/compilation_cache/cache_misses" not in events
    assert len(traces) == 1
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


def _whole_batch_and_cached(impl, with_whole_batch=True, **extra):
    """The loss and gradients of one synthetic batch of 32 under `loss.impl=impl`: taken
    directly (the step of accum_steps=1; None when not `with_whole_batch`) and by the cached
    accumulation of accum_steps=4, each as (loss, grads)."""
    overrides = tiny_overrides(batch_size=32, optimizer__accum_steps=4, loss__impl=impl, **extra)
    config = build_config("configs/demo.py", overrides)
    mesh, parts = _setup(config)
    method, model = parts.method, parts.model
    params = init_state(parts, 0).params
    batch = shd.global_batch(synthetic_batch(config, config.batch_size), mesh, config.sharding)
    key, step = jax.random.key_data(jax.random.key(3)), jnp.int32(0)
    (loss, _), grads = jax.jit(make_cached_accumulation(method, model, config, mesh))(
        params, batch, key, step
    )
    cached = (float(loss), grads)
    if not with_whole_batch:
        return None, cached
    whole = jax.jit(jax.value_and_grad(make_loss_fn(method, model, config, mesh), has_aux=True))
    (loss, _), grads = whole(params, batch, method.rngs(key, step))
    return (float(loss), grads), cached


def _assert_same_grads(got, want, what=""):
    """Equal gradients but for float32 rounding: each within 1e-5 of the largest."""
    scale = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(want))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * scale, err_msg=what)


def _assert_same_loss_and_grads(got, want, what):
    """(loss, grads) pairs equal but for float32 rounding: the loss within 1e-5 relative."""
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, err_msg=what)
    _assert_same_grads(got[1], want[1], what)


def test_cached_accumulation_gives_the_whole_batch_loss_and_gradients_for_every_loss_impl():
    """accum_steps=4 (GradCache) gives the loss and every gradient of the whole batch taken
    directly, for each loss impl: a microbatch that saw only its own negatives, or a scalar
    output (scale, bias) pulled back whole by every microbatch, shows in both. ring is exact,
    so all_gather's direct gradient is its reference too; grouped (groups of 2 of the 8
    devices, sigmoid with its bias) is another objective, with its own. The gradient programs
    without the optimizer: the train step with accumulation, updates included, is
    test_accumulated_step_equals_mean_of_microbatch_gradients'."""
    whole_batch, cached = _whole_batch_and_cached("all_gather")
    _assert_same_loss_and_grads(cached, whole_batch, "all_gather")
    _, cached = _whole_batch_and_cached("ring", with_whole_batch=False)
    _assert_same_loss_and_grads(cached, whole_batch, "ring")
    sigmoid = dict(loss__kind="sigmoid", model__bias_init=-10.0, loss__group_size=2)
    whole_batch, cached = _whole_batch_and_cached("grouped", **sigmoid)
    _assert_same_loss_and_grads(cached, whole_batch, "grouped")


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
    params = init_state(parts, 0).params
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
    _assert_same_grads(grads, want)  # rounding, not another mask


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
