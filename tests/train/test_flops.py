"""Matmul FLOPs counted on the jaxpr: loops at their trip count, dead code dropped."""

import jax
import jax.numpy as jnp

from vljax.config import build_config
from vljax.models.flops import train_flops_per_image
from vljax.train.aot import build_train_step
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


# The B/16 recipes at width 256, 64 px, 16 text tokens, no remat; 2 image blocks (the count
# per block times depth) and 1 text block (each tower's own depth; a compile of seconds less).
SMALL_B16 = {
    "batch_size": "32",
    "model.image.image_size": "64",
    "model.image.width": "256",
    "model.image.depth": "2",
    "model.image.heads": "4",
    "model.image.mlp_dim": "1024",
    "model.text.max_len": "16",
    "model.text.width": "256",
    "model.text.depth": "1",
    "model.text.heads": "4",
    "model.text.mlp_dim": "1024",
    "model.text.vocab_size": "256",
    "tokenizer.vocab_size": "256",
    "model.embed_dim": "256",
    "model.remat": "false",
    "model.scan": "false",
    "model.dtype": "float32",
    "mesh.fsdp": "1",
    "loss.impl": "all_gather",
}


def test_model_flops_agree_with_xla_cost_analysis():
    """The analytic count (vljax/models/flops.py, what MFU is quoted in) against XLA's count
    of the step's HLO (its cost analysis, elementwise work included: 1.019 of the analytic
    count on the lowered step, 1.021 on the compiled one, which takes 9 s more to get) and the
    jaxpr's matmuls. SigLIP's towers have every term (MAP head, text projection with bias);
    tests/test_gpu_benchmark.py checks a tiny CLIP's count by hand."""
    config = build_config("configs/siglip_vit_b16.py", list(SMALL_B16.items()))
    built = build_train_step(config, jax.devices()[:1])
    traced = built.step.trace(built.parts.abstract, built.batch)
    model = 32 * train_flops_per_image(config.model.to_dict(), 32)["total"]
    assert abs(traced.lower().cost_analysis()["flops"] / model - 1) < 0.05
    assert abs(step_flops(traced) / model - 1) < 1e-3
