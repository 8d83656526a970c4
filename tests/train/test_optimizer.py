"""The optimizer against hand-written numpy references."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from vljax.train.optimizer import (
    build_optimizer,
    global_norm,
    learning_rate_schedule,
    nonfinite_counts,
)


def opt_config(**overrides):
    c = ml_collections.ConfigDict(
        dict(
            learning_rate=0.1,
            warmup_steps=0,
            schedule="constant",
            end_learning_rate_factor=0.0,
            b1=0.9,
            b2=0.98,
            eps=1e-6,
            weight_decay=0.5,
            grad_clip_norm=None,
            accum_steps=1,
            frozen=[],
            max_nonfinite_in_a_row=10,
            flatten=False,
        )
    )
    c.update(overrides)
    return c


def make_params(seed=0):
    r = np.random.default_rng(seed)
    f = lambda *shape: r.normal(size=shape).astype(np.float32)
    return {
        "img": {
            "Dense_0": {"kernel": f(3, 4), "bias": f(4)},
            "LayerNorm_0": {"scale": f(4), "bias": f(4)},
            "pos_embedding": f(1, 5, 4),
        },
        "txt": {
            "Embed_0": {"embedding": f(7, 4)},
            "proj": {"kernel": f(4, 2)},
        },
        "log_scale": np.float32(2.3),
        "bias": np.float32(-10.0),
    }


def is_kernel(path):
    return path[-1].key == "kernel"


def numpy_adamw(params, grads_seq, c, lr_fn):
    """Reference AdamW with global-norm clipping and decay on `kernel` leaves only."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [p for p, _ in leaves]
    p = [np.asarray(x, np.float64) for _, x in leaves]
    mu = [np.zeros_like(x) for x in p]
    nu = [np.zeros_like(x) for x in p]
    for t, grads in enumerate(grads_seq):
        g = [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(grads)]
        if c.grad_clip_norm:
            norm = math.sqrt(sum(float(np.sum(x * x)) for x in g))
            if norm > c.grad_clip_norm:
                g = [x * c.grad_clip_norm / norm for x in g]
        lr = lr_fn(t)
        for i in range(len(p)):
            mu[i] = c.b1 * mu[i] + (1 - c.b1) * g[i]
            nu[i] = c.b2 * nu[i] + (1 - c.b2) * g[i] ** 2
            mhat = mu[i] / (1 - c.b1 ** (t + 1))
            vhat = nu[i] / (1 - c.b2 ** (t + 1))
            step = mhat / (np.sqrt(vhat) + c.eps)
            if is_kernel(paths[i]):
                step = step + c.weight_decay * p[i]
            p[i] = p[i] - lr * step
    return jax.tree_util.tree_unflatten(treedef, p)


def run_optax(params, grads_seq, c, total_steps=100):
    tx = build_optimizer(c, total_steps)
    state = tx.init(params)
    update = jax.jit(tx.update)
    for grads in grads_seq:
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def random_grads(params, n, seed=1, scales=None):
    r = np.random.default_rng(seed)
    out = []
    for t in range(n):
        s = 1.0 if scales is None else scales[t]
        out.append(
            jax.tree.map(lambda x, s=s: (s * r.normal(size=np.shape(x))).astype(np.float32), params)
        )
    return out


def assert_trees_close(a, b, **kw):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **kw), a, b)


# optimizer.flatten: the same optimizer on one vector per group of params (decayed or not).
FLATTEN = pytest.mark.parametrize("flatten", [False, True], ids=["per_leaf", "flat"])


@FLATTEN
def test_adamw_decays_kernels_only(flatten):
    c = opt_config(flatten=flatten)
    params = make_params()
    grads = random_grads(params, 3)
    got, state = run_optax(params, grads, c)
    if flatten:  # Adam's two moments, each a vector of the 20 decayed and the 62 other values
        vectors = [x.size for x in jax.tree.leaves(state) if np.ndim(x) == 1]
        assert sorted(vectors) == [20, 20, 62, 62]
    want = numpy_adamw(params, grads, c, lambda t: c.learning_rate)
    assert_trees_close(got, want, rtol=1e-5, atol=1e-6)
    # Sanity: the reference is sensitive to the mask (decaying everything gives another answer).
    no_decay = numpy_adamw(params, grads, opt_config(weight_decay=0.0), lambda t: c.learning_rate)
    assert not np.allclose(got["img"]["Dense_0"]["kernel"], no_decay["img"]["Dense_0"]["kernel"])
    np.testing.assert_allclose(
        got["img"]["LayerNorm_0"]["scale"], no_decay["img"]["LayerNorm_0"]["scale"], rtol=1e-5
    )


@FLATTEN
def test_global_norm_is_the_norm_of_every_value(flatten):
    """The step's logged grad_norm and param_norm, per leaf or over the concatenation."""
    params = make_params()
    squares = [np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(params)]
    norm = jax.jit(global_norm, static_argnums=1)(params, flatten)
    assert float(norm) == pytest.approx(math.sqrt(sum(squares)), rel=1e-6)


@FLATTEN
def test_clipping_matches_numpy(flatten):
    c = opt_config(grad_clip_norm=1.0, weight_decay=0.0, flatten=flatten)
    params = make_params()
    # Gradient scales vary, so clipping changes Adam's moment ratios (not just a rescale).
    grads = random_grads(params, 3, scales=[50.0, 0.01, 5.0])
    got, _ = run_optax(params, grads, c)
    want = numpy_adamw(params, grads, c, lambda t: c.learning_rate)
    assert_trees_close(got, want, rtol=1e-4, atol=1e-6)
    unclipped = numpy_adamw(params, grads, opt_config(weight_decay=0.0), lambda t: 0.1)
    assert not np.allclose(got["txt"]["proj"]["kernel"], unclipped["txt"]["proj"]["kernel"])


@pytest.mark.parametrize("clip", [None, 0.0])
def test_clipping_disabled(clip):
    c = opt_config(grad_clip_norm=clip)
    params = make_params()
    grads = random_grads(params, 2, scales=[100.0, 0.01])
    got, _ = run_optax(params, grads, c)
    want = numpy_adamw(params, grads, c, lambda t: c.learning_rate)
    assert_trees_close(got, want, rtol=1e-5, atol=1e-6)


def test_schedule_closed_form():
    c = opt_config(learning_rate=2.0, warmup_steps=10, schedule="cosine")
    c.end_learning_rate_factor = 0.1
    lr = learning_rate_schedule(c, total_steps=110)
    end = 0.2

    def cosine(step):
        return end + (2.0 - end) * 0.5 * (1 + math.cos(math.pi * (step - 10) / 100))

    expected = {0: 0.0, 5: 1.0, 10: 2.0, 35: cosine(35), 60: cosine(60), 110: end, 500: end}
    for step, want in expected.items():
        assert float(lr(step)) == pytest.approx(want, rel=1e-5, abs=1e-7), step
    assert float(jax.jit(lr)(jnp.int32(60))) == pytest.approx(1.1, rel=1e-5)

    const = learning_rate_schedule(opt_config(learning_rate=2.0, warmup_steps=4), 100)
    assert [float(const(s)) for s in (0, 1, 4, 99)] == pytest.approx([0.0, 0.5, 2.0, 2.0])
    with pytest.raises(ValueError, match="schedule"):
        learning_rate_schedule(opt_config(schedule="cosin"), 10)


def test_schedule_drives_updates():
    c = opt_config(learning_rate=1.0, warmup_steps=2, schedule="cosine", weight_decay=0.1)
    params = make_params()
    grads = random_grads(params, 4)
    got, _ = run_optax(params, grads, c, total_steps=6)
    lr = learning_rate_schedule(c, 6)
    want = numpy_adamw(params, grads, c, lambda t: float(lr(t)))
    assert_trees_close(got, want, rtol=1e-5, atol=1e-6)


def count_state_leaves(state):
    return [np.shape(x) for x in jax.tree_util.tree_leaves(state)]


@FLATTEN
def test_frozen_params_unchanged_and_stateless(flatten):
    c = opt_config(frozen=["^img/", "^log_scale$"], flatten=flatten)
    params = make_params()
    grads = random_grads(params, 3)
    got, state = run_optax(params, grads, c)
    for name in ("img", "log_scale"):
        assert_trees_close(got[name], params[name], rtol=0, atol=0)
    # Trainable params follow plain AdamW on the trainable subtree.
    trainable = {k: params[k] for k in ("txt", "bias")}
    sub_grads = [{k: g[k] for k in ("txt", "bias")} for g in grads]
    want = numpy_adamw(trainable, sub_grads, c, lambda t: c.learning_rate)
    assert_trees_close({k: got[k] for k in ("txt", "bias")}, want, rtol=1e-5, atol=1e-6)
    # No optimizer state for frozen leaves: same leaves as an optimizer over the rest alone.
    _, ref_state = run_optax(trainable, sub_grads[:1], opt_config(flatten=flatten))
    assert sorted(count_state_leaves(state)) == sorted(count_state_leaves(ref_state))
    shapes = count_state_leaves(state)
    assert (1, 5, 4) not in shapes and (3, 4) not in shapes
    # NaN in a frozen grad is ignored: it is discarded, not a reason to skip.
    nan_grads = jax.tree.map(lambda g: g, grads[0])
    nan_grads["img"]["Dense_0"]["kernel"] = np.full((3, 4), np.nan, np.float32)
    tx = build_optimizer(c, 100)
    updates, state = tx.update(nan_grads, state, got)
    assert int(nonfinite_counts(state)["total"]) == 0
    assert np.all(updates["img"]["Dense_0"]["kernel"] == 0)


def test_frozen_pattern_typo_is_an_error():
    tx = build_optimizer(opt_config(frozen=["^image/"]), 10)
    with pytest.raises(ValueError, match="match no parameter"):
        tx.init(make_params())


@FLATTEN
def test_nonfinite_update_is_skipped_and_counted(flatten):
    c = opt_config(flatten=flatten)
    params = make_params()
    tx = build_optimizer(c, 100)
    state = tx.init(params)
    update = jax.jit(tx.update)
    counts = jax.jit(nonfinite_counts)
    good = random_grads(params, 2)
    bad = jax.tree.map(lambda g: g, good[0])
    bad["txt"]["proj"]["kernel"] = bad["txt"]["proj"]["kernel"].copy()
    bad["txt"]["proj"]["kernel"][0, 0] = np.nan
    inf = jax.tree.map(lambda g: g, good[0])
    inf["bias"] = np.float32(np.inf)

    expected = [(bad, 1, 1), (inf, 2, 2), (good[0], 0, 2), (bad, 1, 3)]
    for grads, consecutive, total in expected:
        updates, state = update(grads, state, params)
        new = optax.apply_updates(params, updates)
        got = {k: int(v) for k, v in counts(state).items()}
        assert got == dict(consecutive=consecutive, total=total)
        if consecutive:
            assert_trees_close(new, params, rtol=0, atol=0)
        params = new
    # Only the good step reached Adam: skips left its moments and step count untouched, so
    # the result equals one reference step (first-step bias correction) from the start.
    want = numpy_adamw(make_params(), [good[0]], c, lambda t: c.learning_rate)
    assert_trees_close(params, want, rtol=1e-5, atol=1e-6)
    # The counters are also reachable through the multi_transform state.
    frozen_tx = build_optimizer(opt_config(frozen=["^img/"], flatten=flatten), 10)
    assert int(nonfinite_counts(frozen_tx.init(make_params()))["consecutive"]) == 0
