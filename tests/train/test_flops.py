"""Matmul FLOPs counted on the jaxpr: loops at their trip count, dead code dropped."""

import jax
import jax.numpy as jnp

from vljax.train.flops import step_flops

MATMUL = 2 * 4 * 8 * 16  # [4, 8] @ [8, 16]


def _flops(fn, *shapes):
    return step_flops(jax.jit(fn).trace(*(jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes)))


def test_a_scan_body_counts_once_per_iteration_and_dead_code_not_at_all():
    assert _flops(lambda x, w: x @ w, (4, 8), (8, 16)) == MATMUL
    assert _flops(lambda x, w: (x @ w, (x @ w) @ w.T)[0], (4, 8), (8, 16)) == MATMUL

    def scanned(x, w):
        return jax.lax.scan(lambda c, _: (c, c @ w), x, None, length=5)[1]

    assert _flops(scanned, (4, 8), (8, 16)) == 5 * MATMUL
    # A loop inside a shard_map body (one device's shard): once per device and iteration.
    mesh = jax.make_mesh((8,), ("data",))
    rows, whole = (jax.NamedSharding(mesh, jax.P(*p)) for p in (("data",), ()))
    sharded = jax.shard_map(
        scanned, mesh=mesh, in_specs=(jax.P("data"), jax.P()), out_specs=jax.P(None, "data")
    )
    x = jax.ShapeDtypeStruct((32, 8), jnp.float32, sharding=rows)
    w = jax.ShapeDtypeStruct((8, 16), jnp.float32, sharding=whole)
    assert step_flops(jax.jit(sharded).trace(x, w)) == 8 * 5 * MATMUL
