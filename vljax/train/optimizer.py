"""The optax optimizer built from `config.optimizer`.

    clip by global norm -> AdamW (decay on `kernel` leaves only) -> learning-rate schedule,
    wrapped in `apply_if_finite`, and, when `frozen` patterns are given, routed through
    `multi_transform` so that frozen params get zero updates and hold no optimizer state.

With `flatten`, clipping, AdamW and the finite check run on the params concatenated into one
vector per group (decayed or not, by dtype; `flat_groups`): the same updates (up to the order
of the global norm's sum) from a few large ops instead of a dozen small ones per param leaf.
That makes the compiled step of a model with many small params smaller (a tiny recipe's step
compiles in about half the CPU time: docs/benchmarks.md, "Flat optimizer"), but the
concatenation gathers every param, so it is for replicated params only (`check_flatten`); the
optimizer state then holds the flat vectors.

Non-finite updates are skipped (params and inner state untouched). `apply_if_finite` gets a
huge `max_consecutive_errors`: the training loop, not the optimizer, decides when too many
skips in a row (`max_nonfinite_in_a_row`) should stop the run, reading `nonfinite_counts`.
Gradient accumulation is the train step's business (microbatches), not the optimizer's.

A skipped update does not advance the optimizer's own step count, so the learning rate that
was applied at global step t is `learning_rate_schedule(...)(t - skipped_so_far)`.
"""

import math
import re

import jax
import jax.numpy as jnp
import optax

from vljax.choices import SCHEDULES, expected
from vljax.errors import ConfigError

# Never let apply_if_finite give up on its own; the loop stops the run first.
_NEVER = 2**30

TRAINABLE, FROZEN = "trainable", "frozen"


def learning_rate_schedule(opt_config, total_steps):
    """Returns step -> learning rate (jnp float32), usable inside jit.

    Linear warmup from 0 to `learning_rate` over `warmup_steps`, then either constant or a
    cosine decay that reaches `learning_rate * end_learning_rate_factor` at `total_steps`
    and stays there.
    """
    peak = float(opt_config.learning_rate)
    warmup = int(opt_config.warmup_steps)
    kind = opt_config.schedule
    end = peak * float(opt_config.get("end_learning_rate_factor", 0.0))
    if kind not in ("cosine", "constant"):
        raise ConfigError(f"optimizer.schedule={kind!r}; expected {expected(SCHEDULES)}")
    decay_steps = max(int(total_steps) - warmup, 1)

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        warm = peak * step / max(warmup, 1)
        if kind == "constant":
            after = jnp.full_like(step, peak)
        else:
            progress = jnp.clip((step - warmup) / decay_steps, 0.0, 1.0)
            after = end + (peak - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        return jnp.where(step < warmup, warm, after)

    return schedule


def path_str(path):
    """A jax key path as the "/"-joined string that `frozen` patterns are matched against."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def decay_mask(params):
    """True for leaves named `kernel` (weight matrices); norms, biases, embeddings, position
    embeddings and the temperature/bias scalars are not decayed."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: path_str(path).split("/")[-1] == "kernel", params
    )


def frozen_labels(params, patterns):
    """Labels each leaf TRAINABLE or FROZEN; a FROZEN leaf matches one of `patterns`
    (re.search on its "/"-joined path). A pattern that matches nothing is an error: a typo
    would otherwise silently train the tower that was meant to stay frozen."""
    compiled = [re.compile(p) for p in patterns]
    used = set()

    def label(path, _):
        name = path_str(path)
        hits = [c.pattern for c in compiled if c.search(name)]
        used.update(hits)
        return FROZEN if hits else TRAINABLE

    labels = jax.tree_util.tree_map_with_path(label, params)
    unused = [p for p in patterns if p not in used]
    if unused:
        raise ConfigError(f"optimizer.frozen patterns match no parameter: {unused}")
    return labels


def stop_frozen_gradients(params, patterns):
    """Params with the frozen ones behind `stop_gradient`: no gradient is computed through a
    frozen tower at all (LiT), not only discarded by the optimizer, so its backward pass
    leaves the compiled step."""
    labels = frozen_labels(params, patterns)
    return jax.tree.map(
        lambda p, label: jax.lax.stop_gradient(p) if label == FROZEN else p, params, labels
    )


DECAYED = "decayed"  # the prefix of `flat_groups`' decayed vectors


def flat_group_names(tree) -> list[str]:
    """Each leaf's group in `flat_groups`: DECAYED or "other" (decay_mask), then its dtype."""
    decayed = jax.tree.leaves(decay_mask(tree))
    return [
        f"{DECAYED if d else 'other'}_{jnp.dtype(x.dtype).name}"
        for x, d in zip(jax.tree.leaves(tree), decayed, strict=True)
    ]


def flat_decay_mask(groups):
    """decay_mask for `flat_groups`' vectors: the DECAYED groups."""
    return {name: name.startswith(f"{DECAYED}_") for name in groups}


def flat_groups(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """`inner` run on {group: one vector of the group's leaves, raveled and concatenated}
    (groups from `flat_group_names`), its updates split back into the params' tree."""

    def flatten(tree):
        leaves, names = jax.tree.leaves(tree), flat_group_names(tree)
        return {
            name: jnp.concatenate([jnp.ravel(x) for x, n in zip(leaves, names) if n == name])
            for name in sorted(set(names))
        }

    def unflatten(groups, like):
        leaves, treedef = jax.tree.flatten(like)
        offsets = dict.fromkeys(groups, 0)
        out = []
        for x, name in zip(leaves, flat_group_names(like)):
            size, start = math.prod(x.shape), offsets[name]
            out.append(groups[name][start : start + size].reshape(x.shape))
            offsets[name] = start + size
        return jax.tree.unflatten(treedef, out)

    def init(params):
        return inner.init(flatten(params))

    def update(updates, state, params=None):
        flat_params = None if params is None else flatten(params)
        flat_updates, state = inner.update(flatten(updates), state, flat_params)
        return unflatten(flat_updates, updates), state

    return optax.GradientTransformation(init, update)


def flattens(opt_config) -> bool:
    """Whether `optimizer.flatten` is on (configs from before it have no key: off)."""
    return bool(opt_config.get("flatten", False))


def global_norm(tree, flatten: bool):
    """The L2 norm of all the values in `tree`; with `flatten`, of their concatenation: one
    reduction instead of one per leaf (for replicated trees only, like `flat_groups`)."""
    if not flatten:
        return optax.tree.norm(tree)
    return jnp.linalg.norm(jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)]))


def check_flatten(opt_config, params_shardings):
    """`optimizer.flatten` concatenates the params: refused when any of them is sharded."""
    if not flattens(opt_config):
        return
    flat = jax.tree_util.tree_flatten_with_path(params_shardings)[0]
    sharded = [path_str(path) for path, s in flat if not s.is_fully_replicated]
    if sharded:
        raise ConfigError(
            "optimizer.flatten=True concatenates the params into one vector per group, but "
            f"the mesh shards {len(sharded)} of them (e.g. {sharded[0]}); set "
            "optimizer.flatten=False, or mesh.fsdp=1 and mesh.tensor=1 (data parallel only)"
        )


def build_optimizer(opt_config, total_steps) -> optax.GradientTransformation:
    """The optimizer for `config.optimizer`; see the module docstring."""
    clip = opt_config.get("grad_clip_norm", None)
    steps = [optax.clip_by_global_norm(float(clip))] if clip else []
    flatten = flattens(opt_config)
    steps.append(
        optax.adamw(
            learning_rate=learning_rate_schedule(opt_config, total_steps),
            b1=float(opt_config.b1),
            b2=float(opt_config.b2),
            eps=float(opt_config.eps),
            weight_decay=float(opt_config.weight_decay or 0.0),
            mask=flat_decay_mask if flatten else decay_mask,
        )
    )
    # Only the trainable grads are checked for NaN/Inf: frozen grads are discarded anyway.
    trainable = optax.apply_if_finite(optax.chain(*steps), max_consecutive_errors=_NEVER)
    if flatten:
        trainable = flat_groups(trainable)
    patterns = list(opt_config.get("frozen", None) or [])
    if not patterns:
        return trainable
    return optax.multi_transform(
        {TRAINABLE: trainable, FROZEN: optax.set_to_zero()},
        lambda params: frozen_labels(params, patterns),
    )


def _find_if_finite_state(opt_state):
    found = [
        s
        for s in jax.tree_util.tree_leaves(
            opt_state, is_leaf=lambda x: isinstance(x, optax.ApplyIfFiniteState)
        )
        if isinstance(s, optax.ApplyIfFiniteState)
    ]
    if len(found) != 1:
        raise ConfigError(
            f"expected one ApplyIfFiniteState in the optimizer state, found {len(found)}"
        )
    return found[0]


def nonfinite_counts(opt_state):
    """dict(consecutive=int32, total=int32): skipped non-finite updates in a row (0 after a
    good step) and since the start. Pure pytree traversal, so it works inside jit."""
    state = _find_if_finite_state(opt_state)
    return dict(consecutive=state.notfinite_count, total=state.total_notfinite)
