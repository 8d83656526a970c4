"""impl="ring" against the dense float64 reference (values and gradients), and its memory
scaling from the compiled program's memory_analysis (deterministic, no timing)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from loss_reference import assert_close, embeddings, mesh_of, reference, shard
from test_all_gather import BIAS, SCALE, check, run

from benchmarks.loss import comm_bytes, hlo_comm_bytes
from vljax.losses import contrastive_loss


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
@pytest.mark.parametrize(
    "n_dev,b,chunk",
    [(1, 10, 4), (2, 7, 3), (4, 6, None), (8, 5, 2)],  # b not a power of two, ragged tiles
)
def test_matches_dense_reference(kind, n_dev, b, chunk):
    zimg, ztxt = embeddings(n_dev * b, 512, seed=n_dev)  # D = 512 as in docs/losses.md
    mesh = mesh_of((n_dev,), ("data",))
    val, grads = run(zimg, ztxt, mesh, ("data",), kind, impl="ring", chunk=chunk)
    check(val, grads, zimg, ztxt, kind, 1e-5)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_several_batch_axes_and_replicated_tensor_axis(kind):
    zimg, ztxt = embeddings(4 * 3, 16, seed=3)
    mesh = mesh_of((2, 2, 2), ("data", "tensor", "fsdp"))
    val, grads = run(zimg, ztxt, mesh, ("data", "fsdp"), kind, impl="ring", chunk=2)
    check(val, grads, zimg, ztxt, kind, 1e-5)


@pytest.mark.parametrize(
    "impl,kind",
    [("ring", "softmax"), ("ring", "sigmoid"), ("all_gather", "softmax"), ("grouped", "sigmoid")],
)
def test_bfloat16_inputs(impl, kind):
    """bf16 embeddings, float32 accumulation: compare against the reference evaluated at the
    same (bf16-rounded) inputs, with a bf16-sized tolerance on the gradients."""
    zimg, ztxt = embeddings(4 * 6, 32, seed=5)
    zimg = jnp.asarray(zimg, jnp.bfloat16)
    ztxt = jnp.asarray(ztxt, jnp.bfloat16)
    mesh = mesh_of((4,), ("data",))
    kw = dict(chunk=4) if impl == "ring" else dict(group_size=2) if impl == "grouped" else {}
    val, grads = run(zimg, ztxt, mesh, ("data",), kind, impl=impl, **kw)
    assert grads[0].dtype == jnp.bfloat16 and grads[1].dtype == jnp.bfloat16
    ref_val, ref_grads = reference(
        np.asarray(zimg, np.float32),
        np.asarray(ztxt, np.float32),
        SCALE,
        BIAS,
        kind,
        group_rows=2 * 6 if impl == "grouped" else None,
    )
    assert_close(val, ref_val, 1e-5, "loss")  # inputs are exact, sums are float32
    for name, g, r in zip(("zimg", "ztxt", "scale", "bias"), grads, ref_grads):
        if not (name == "bias" and kind == "softmax"):
            assert_close(g, r, 2e-2, name)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_value_without_gradient(kind):
    zimg, ztxt = embeddings(8 * 3, 16, seed=7)
    mesh = mesh_of((8,), ("data",))
    fn = jax.jit(
        lambda zi, zt: contrastive_loss(
            zi, zt, scale=SCALE, bias=BIAS, kind=kind, impl="ring", mesh=mesh, chunk=2
        )
    )
    want, _ = reference(zimg, ztxt, SCALE, BIAS, kind)
    assert_close(fn(shard(zimg, mesh, ("data",)), shard(ztxt, mesh, ("data",))), want, 1e-5)


def test_compiles_on_abstract_inputs_without_bias():
    mesh = mesh_of((4,), ("data",))
    fn = lambda zi, zt, s: contrastive_loss(
        zi, zt, scale=s, kind="softmax", impl="ring", mesh=mesh, chunk=3
    )
    spec = jax.ShapeDtypeStruct((20, 8), jnp.bfloat16)
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    assert jax.jit(jax.grad(fn, argnums=(0, 1, 2))).lower(spec, spec, scalar).compile()


def compiled_stats(impl, kind, n_dev, b, dim, chunk):
    """(per-device temp bytes, bytes received per device read off the HLO) of the compiled
    fwd+bwd, from abstract inputs (nothing runs)."""
    mesh = mesh_of((n_dev,), ("data",))
    emb = jax.ShapeDtypeStruct(
        (n_dev * b, dim), jnp.float32, sharding=NamedSharding(mesh, P("data"))
    )
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    fn = lambda zi, zt, s, c: contrastive_loss(
        zi, zt, scale=s, bias=c, kind=kind, impl=impl, mesh=mesh, chunk=chunk
    )
    grad = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2, 3)))
    compiled = grad.lower(emb, emb, scalar, scalar).compile()
    return compiled.memory_analysis().temp_size_in_bytes, hlo_comm_bytes(compiled.as_text())


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_ring_scratch_is_flat_in_devices_and_communication_as_derived(kind):
    b, dim, chunk = 256, 64, 64
    ring = {n: compiled_stats("ring", kind, n, b, dim, chunk) for n in (2, 4, 8)}
    gather = {n: compiled_stats("all_gather", kind, n, b, dim, chunk) for n in (4, 8)}
    scratch = {n: v[0] for n, v in ring.items()}
    # From 3 devices on the ring program is the same (double-buffered block); with 2 the last
    # step sends nothing, so one block buffer (b * D floats, plus a few b-vectors) is saved.
    assert scratch[4] == scratch[8]
    assert 0 <= scratch[4] - scratch[2] <= b * dim * 4 + 16 * b * 4
    # The all-gather's b x B logit blocks grow with P; the ring's O(b * (chunk + D)) does not.
    assert gather[8][0] >= 1.8 * gather[4][0]
    assert 8 * scratch[8] <= gather[8][0]
    # The communication that docs/losses.md states is what the compiled program does (up to
    # the scalar psums, which the derivation leaves out).
    for impl, stats in (("ring", ring), ("all_gather", gather)):
        for n in (4, 8):
            derived = comm_bytes(impl, kind, n, b, dim, 4, group_size=n)
            assert 0 <= stats[n][1] - derived <= 64, (impl, n, stats[n][1], derived)
