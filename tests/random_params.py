"""Random model variables drawn on the host, for tests that need some params of a model's
shapes but not its init's distribution (equalities that hold for any params).

A jitted `model.init` compiles its random draws: 30-100 ms of XLA CPU compile per param
leaf on 2 cores, 3-7 s for a tiny model (docs/benchmarks.md); `jax.eval_shape` only traces it."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def random_variables(model: nn.Module, *args, seed: int = 0, **kwargs) -> dict:
    """What `model.init(key, *args, **kwargs)` returns (unboxed), with every param drawn from
    N(0, 0.1^2) and the layer-norm scales from N(1, 0.1^2)."""
    init = functools.partial(model.init, **kwargs)  # keywords such as method= stay static
    shapes = nn.unbox(jax.eval_shape(init, jax.random.key(0), *args))
    rs = np.random.RandomState(seed)

    def draw(path, leaf):
        x = jnp.asarray(0.1 * rs.standard_normal(leaf.shape), leaf.dtype)
        return x + 1 if jax.tree_util.keystr(path).endswith("['scale']") else x

    return jax.tree_util.tree_map_with_path(draw, shapes)
