"""The train state, its abstract shape and its shardings (all derived from config data)."""

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from vljax import sharding as shd
from vljax.errors import ConfigError


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


def example_inputs(model_config, batch: int = 1):
    """Dummy inputs with the model's shapes, for init and abstract evaluation."""
    size = model_config.image.image_size
    images = jnp.zeros((batch, size, size, 3), jnp.float32)
    tokens = jnp.zeros((batch, model_config.text.max_len), jnp.int32)
    return images, tokens


def abstract_boxed_params(model, model_config):
    """Param shapes with their logical axis names, without allocating anything."""
    images, tokens = example_inputs(model_config)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), images, tokens))
    return variables["params"]


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


def state_shardings(model, model_config, tx, mesh, sharding_config):
    """Returns (abstract state, state shardings) for jit's in/out shardings."""
    boxed = abstract_boxed_params(model, model_config)
    params_shardings = shd.param_shardings(boxed, mesh, sharding_config)
    params_shapes = nn.unbox(boxed)
    opt_shapes = jax.eval_shape(tx.init, params_shapes)
    shardings = TrainState(
        step=NamedSharding(mesh, PartitionSpec()),
        params=params_shardings,
        opt_state=opt_state_shardings(opt_shapes, params_shardings, mesh),
    )
    shapes = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32), params=params_shapes, opt_state=opt_shapes
    )
    abstract = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings
    )
    return abstract, shardings


def init_state(model, model_config, tx, seed, shardings, init_params=None):
    """Creates the state directly in its shardings (params never materialise on one device)."""

    def init(key):
        images, tokens = example_inputs(model_config)
        params = nn.unbox(model.init(key, images, tokens)["params"])
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    state = jax.jit(init, out_shardings=shardings)(jax.random.key(seed))
    if init_params is not None:
        params = load_into(state.params, init_params, shardings.params)
        state = jax.jit(
            lambda p: TrainState(step=jnp.zeros((), jnp.int32), params=p, opt_state=tx.init(p)),
            out_shardings=shardings,
        )(params)
    return state


def load_into(params, loaded, params_shardings):
    """Places host arrays `loaded` (same tree as params) onto params' shardings, checking shapes."""
    flat_params = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    flat_loaded = dict(jax.tree_util.tree_flatten_with_path(loaded)[0])
    problems = []
    for path, leaf in flat_params.items():
        name = "/".join(_dict_path(path))
        if path not in flat_loaded:
            problems.append(f"{name}: missing from the loaded params (model expects {leaf.shape})")
        elif tuple(np.shape(flat_loaded[path])) != tuple(leaf.shape):
            problems.append(
                f"{name}: loaded shape {np.shape(flat_loaded[path])}, model expects {leaf.shape}"
            )
    for path in flat_loaded.keys() - flat_params.keys():
        problems.append(f"{'/'.join(_dict_path(path))}: not a parameter of this model")
    if problems:
        raise ConfigError(
            "init params do not match config.model:\n  " + "\n  ".join(sorted(problems))
        )
    return jax.tree.map(
        lambda x, ref, s: jax.device_put(np.asarray(x, ref.dtype), s),
        loaded,
        params,
        params_shardings,
    )


def num_params(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
