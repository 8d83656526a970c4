"""The train state, its abstract shape and its shardings (all derived from config data)."""

import dataclasses
import re
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from vljax import sharding as shd
from vljax.errors import ConfigError
from vljax.methods import Method, get_method
from vljax.params_io import shape_mismatches
from vljax.train.optimizer import build_optimizer, check_flatten


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any
    # The run's random key (raw uint32 key data, so checkpoints hold it as an array); each
    # step folds in the step and the purpose (Method.rngs), so resumes draw the same masks.
    rng: jax.Array


def run_key(seed: int) -> jax.Array:
    """The TrainState's key: apart from the key that initialised the params."""
    return jax.random.key_data(jax.random.fold_in(jax.random.key(seed), 1))


def boxed_params_init(method, model, model_config):
    """key -> the model's params with their logical axis names, initialised on the method's
    example batch. A jit, so its trace is cached: the abstract shapes (`build_parts`) and the
    sharded init (`init_state`, which calls it inside its own jit) trace the model once."""
    return jax.jit(lambda key: model.init(key, method.example_batch(model_config))["params"])


def abstract_boxed_params(boxed_init):
    """Param shapes with their logical axis names, without allocating anything, from a
    `boxed_params_init`."""
    return jax.eval_shape(boxed_init, jax.random.key(0))


def _dict_path(path) -> tuple[str, ...]:
    return tuple(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey))


def opt_state_shardings(opt_state_shapes, params_shardings, mesh):
    """Shards every optimizer-state leaf like the param whose path it ends with.

    optax states hold copies of the param tree (Adam's mu and nu) inside namedtuples and
    label dicts; a leaf's trailing dict keys are its param's path. Everything else (counts,
    schedules' state) is replicated.
    """
    by_path = {
        _dict_path(path): s for path, s in jax.tree_util.tree_flatten_with_path(params_shardings)[0]
    }
    replicated = NamedSharding(mesh, PartitionSpec())

    def pick(path, leaf):
        keys = _dict_path(path)
        for start in range(len(keys)):
            sharding = by_path.get(keys[start:])
            if sharding is not None and len(sharding.spec) <= len(leaf.shape):
                return sharding
        return replicated

    return jax.tree_util.tree_map_with_path(pick, opt_state_shapes)


def state_shardings(boxed, tx, mesh, sharding_config):
    """Returns (abstract state, state shardings) for jit's in/out shardings, from the
    abstract boxed params (`abstract_boxed_params`)."""
    params_shardings = shd.param_shardings(boxed, mesh, sharding_config)
    params_shapes = nn.unbox(boxed)
    opt_shapes = jax.eval_shape(tx.init, params_shapes)
    replicated = NamedSharding(mesh, PartitionSpec())
    shardings = TrainState(
        step=replicated,
        params=params_shardings,
        opt_state=opt_state_shardings(opt_shapes, params_shardings, mesh),
        rng=replicated,
    )
    shapes = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32),
        params=params_shapes,
        opt_state=opt_shapes,
        rng=jax.eval_shape(run_key, 0),
    )
    abstract = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings
    )
    return abstract, shardings


def init_state(parts, seed, init_params=None, include=()):
    """Creates the state directly in its shardings (params never materialise on one device)."""
    tx, shardings = parts.tx, parts.shardings

    def fresh(params, rng):
        return TrainState(
            step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=rng
        )

    # Init traces the model without the activation rules bound (vljax.sharding.
    # activation_sharding): its forward on a one-example batch is dead code once the params
    # are made (XLA drops it), and one example would not divide over the batch axes.
    def init(key, rng):
        return fresh(nn.unbox(parts.boxed_init(key)), rng)

    # The keys are arguments, not constants: runs that differ only in seed compile one init
    # (the persistent compilation cache then serves a seed sweep's later runs).
    rng = run_key(seed)
    state = jax.jit(init, out_shardings=shardings)(jax.random.key(seed), rng)
    if init_params is not None:
        params = load_into(state.params, init_params, shardings.params, include)
        state = jax.jit(fresh, out_shardings=shardings)(params, rng)
    return state


def load_into(params, loaded, params_shardings, include=()):
    """Places host arrays `loaded` (same tree as params) onto params' shardings, checking shapes.

    `include`: regexes over "/"-joined param paths; when given, only the matching params are
    taken from `loaded` (which may hold more, e.g. a whole CLIP run for LiT's image tower) and
    the others keep their values in `params`.
    """
    flat_params = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    flat_loaded = dict(jax.tree_util.tree_flatten_with_path(loaded)[0])
    if include:
        patterns = [re.compile(p) for p in include]
        taken = {
            path
            for path in flat_params
            if any(p.search("/".join(_dict_path(path))) for p in patterns)
        }
        if not taken:
            raise ConfigError(f"config.init_from_include {list(include)} matches no parameter")
        flat_loaded = {
            path: flat_loaded[path] if path in taken and path in flat_loaded else leaf
            for path, leaf in flat_params.items()
            if path in flat_loaded or path not in taken
        }
    name = lambda path: "/".join(_dict_path(path))
    problems = shape_mismatches(
        {name(path): leaf.shape for path, leaf in flat_params.items()},
        {name(path): np.shape(leaf) for path, leaf in flat_loaded.items()},
    )
    if problems:
        raise ConfigError("init params do not match config.model:\n  " + "\n  ".join(problems))
    treedef = jax.tree.structure(params)
    ordered = [flat_loaded[path] for path in flat_params]
    return jax.tree.map(
        lambda x, ref, s: jax.device_put(np.asarray(x, ref.dtype), s),
        jax.tree.unflatten(treedef, ordered),
        params,
        params_shardings,
    )


def num_params(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


@dataclasses.dataclass(frozen=True)
class RunParts:
    """What a run's config builds before any data or params exist."""

    method: Method
    model: Any  # the method's flax Module
    tx: Any  # the optax optimizer
    boxed_init: Any  # key -> params with their logical axis names (boxed_params_init)
    abstract: TrainState  # shapes with shardings: for restore and ahead-of-time compile
    shardings: TrainState


def build_parts(config, mesh) -> RunParts:
    """The method, model, optimizer and state shardings of `config` on `mesh`."""
    method = get_method(config.method)
    method.terms(config.loss)  # unknown loss terms are refused here, before any work
    method.check_cached_accumulation(config)
    accum_steps = int(config.optimizer.get("accum_steps", 1))
    if accum_steps > 1:  # each microbatch is sharded over the batch axes like the batch
        what = f"config.batch_size / optimizer.accum_steps = {config.batch_size} / {accum_steps}"
        shd.check_batch(config.batch_size // accum_steps, mesh, config.sharding, what)
    model = method.build_model(config.model)
    tx = build_optimizer(config.optimizer, config.total_steps)
    boxed_init = boxed_params_init(method, model, config.model)
    boxed = abstract_boxed_params(boxed_init)
    abstract, shardings = state_shardings(boxed, tx, mesh, config.sharding)
    shd.check_param_shardings(abstract.params, shardings.params, mesh)
    check_flatten(config.optimizer, shardings.params)
    return RunParts(method, model, tx, boxed_init, abstract, shardings)
