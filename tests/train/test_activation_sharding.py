"""Sharding that takes effect: the config's logical axis rules are bound while the train step
and the eval encoder trace the model, read from the compiled HLO on 8 fake CPU devices.

All on the tiny demo config (tests/train/tiny.py), not the demo itself: each compile of a
train step costs seconds of the suite on 2 cores."""

import dataclasses
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.train.tiny import synthetic_batch, tiny_overrides
from vljax import sharding as shd
from vljax.config import build_config
from vljax.errors import ConfigError
from vljax.inference import Encoder, _jitted_decoder
from vljax.train.state import build_parts, init_state
from vljax.train.step import make_train_step

# An all-gather in the compiled module: its result type, e.g. f32[32,2,16].
ALL_GATHER = re.compile(r"= (\w+)\[([\d,]*)\]\S* all-gather\(")


def _compiled_step(config, image_dtype=jnp.uint8):
    mesh = shd.make_mesh(config.mesh)
    parts = build_parts(config, mesh)
    sharding = shd.batch_sharding(mesh, config.sharding)
    size, length = config.model.image.image_size, config.model.text.max_len
    n = config.batch_size
    batch = {
        "image": jax.ShapeDtypeStruct((n, size, size, 3), image_dtype, sharding=sharding),
        "tokens": jax.ShapeDtypeStruct((n, length), jnp.int32, sharding=sharding),
    }
    lowered = make_train_step(parts, config, mesh).lower(parts.abstract, batch)
    return parts, batch, lowered, lowered.compile()


# mlp_dim is not the towers' width 32, so mlp_dim / 2 is told apart from it.
MLP_DIM = 128


def _mlp_config(**mesh):
    changes = {f"mesh__{axis}": size for axis, size in mesh.items()}
    return build_config(
        "configs/demo.py",
        tiny_overrides(
            model__image__mlp_dim=MLP_DIM,
            model__text__mlp_dim=MLP_DIM,
            optimizer__flatten=False,  # the params are sharded
            **changes,
        ),
    )


@pytest.fixture(scope="module")
def tensor_parallel():
    """The train step on tensor=2, fsdp=2, data=2, compiled once for float images: its HLO is
    read by one test and the same program trained by the other."""
    config = _mlp_config(data=2, fsdp=2, tensor=2)
    parts, batch, lowered, compiled = _compiled_step(config, jnp.float32)
    return config, parts, lowered, compiled


def test_tensor_parallel_shards_the_mlp_hidden_activations(tensor_parallel):
    """mesh.tensor=2: the activation constraints reach the module (act_mlp -> tensor), and
    every forward MLP dot of the compiled per-device module computes mlp_dim / 2 columns."""
    _, _, lowered, compiled = tensor_parallel
    constraints = [line for line in lowered.as_text().splitlines() if "sharding_constraint" in line]
    assert any('{"tensor"}]' in line for line in constraints), constraints[:5]
    forward_fc1 = [
        line
        for line in compiled.as_text().splitlines()
        if " dot(" in line and "/mlp/fc1/" in line and "transpose(" not in line
    ]
    assert len(forward_fc1) >= 2, "one forward fc1 dot per tower"
    for line in forward_fc1:
        shape = re.search(r"= f32\[([\d,]+)\]", line).group(1).split(",")
        assert int(shape[-1]) == MLP_DIM // 2, line[:160]


def test_fsdp_shards_params_and_optimizer_and_gathers_weights_not_activations():
    """mesh.fsdp=8, data=1: the per-device arguments are the state's shards (params and Adam
    moments 1/8 where their embed dim is sharded; the few small leaves without one, biases,
    replicated), and the all-gathers in the compiled step are of weights (and of
    the pooled [B, D] embeddings the all_gather loss gathers by design), never of per-token
    activations [B, L, ...]."""
    batch_size = 24  # no param dim is 24: an all-gather of a batch-sized dim is an activation
    # TINY's patch stem: the demo's conv stem has no logical axes (replicated, 30% of the tiny
    # model's params).
    overrides = tiny_overrides(
        mesh__data=1, mesh__fsdp=8, batch_size=batch_size, optimizer__flatten=False
    )
    config = build_config("configs/demo.py", overrides)
    parts, batch, _, compiled = _compiled_step(config)
    state = jax.tree.leaves((parts.abstract, batch))
    nbytes = lambda shape, dtype: math.prod(shape) * jnp.dtype(dtype).itemsize
    total = sum(nbytes(x.shape, x.dtype) for x in state)
    per_device = sum(nbytes(x.sharding.shard_shape(x.shape), x.dtype) for x in state)
    replicated = sum(
        nbytes(x.shape, x.dtype) for x in state if x.sharding.shard_shape(x.shape) == x.shape
    )
    argument_bytes = compiled.memory_analysis().argument_size_in_bytes
    assert abs(argument_bytes - per_device) <= 0.01 * per_device, (argument_bytes, per_device)
    # 1/8 of the sharded bytes plus the replicated ones: within rounding of total / 8.
    assert per_device == pytest.approx((total - replicated) / 8 + replicated, rel=0.01)
    assert replicated < 0.02 * total

    gathered = [
        (dtype, tuple(int(d) for d in dims.split(",") if d))
        for dtype, dims in ALL_GATHER.findall(compiled.as_text())
    ]
    # The matmul weights (the embedding tables are looked up in place, by their shards).
    kernels = {
        x.shape
        for path, x in jax.tree_util.tree_flatten_with_path(parts.abstract.params)[0]
        if path[-1].key == "kernel" and x.sharding.shard_shape(x.shape) != x.shape
    }
    assert len(kernels) >= 4
    # A kernel may be gathered in the layout its matmul reads (the patch embedding's
    # [p, p, 3, W] as [p * p * 3, W]): matched by its size and output features.
    layout_free = lambda shapes: {(math.prod(s), s[-1]) for s in shapes if s}
    gathered_kernels = layout_free(shape for _, shape in gathered)
    assert layout_free(kernels) <= gathered_kernels, "every sharded kernel is gathered"
    activations = [
        (dtype, shape)
        for dtype, shape in gathered
        if dtype.startswith("f") and len(shape) >= 3 and batch_size in shape
    ]
    assert not activations, activations


def test_tensor_parallel_trains_like_data_parallel(tensor_parallel):
    """tensor=2, fsdp=2, data=2 (the program compiled above) trains 8 tiny-demo steps with the
    losses of data=8 within 1e-5 relative: a wrong sharding shows from the first step."""
    config, parts, _, compiled = tensor_parallel
    reference = _mlp_config(data=8)
    mesh = shd.make_mesh(reference.mesh)
    reference_parts = build_parts(reference, mesh)
    runs = {
        "data": (
            reference,
            mesh,
            reference_parts,
            make_train_step(reference_parts, reference, mesh),
        ),
        "tensor": (config, shd.make_mesh(config.mesh), parts, compiled),
    }
    losses = {}
    for name, (cfg, mesh, prts, step) in runs.items():
        state = init_state(prts, 0)
        losses[name] = []
        for i in range(8):
            batch = shd.global_batch(synthetic_batch(cfg, cfg.batch_size, i), mesh, cfg.sharding)
            state, metrics = step(state, batch)
            losses[name].append(float(metrics["loss"]))
    assert losses["data"][-1] < losses["data"][0]
    np.testing.assert_allclose(losses["tensor"], losses["data"], rtol=1e-5)


def test_param_dims_that_do_not_divide_over_the_mesh_are_refused():
    config = build_config(
        "configs/demo.py", tiny_overrides(mesh__data=2, mesh__tensor=4, model__text__heads=2)
    )
    with pytest.raises(ConfigError, match=r"txt/.*query/kernel.*2 over mesh axes \('tensor',\)"):
        build_parts(config, shd.make_mesh(config.mesh))


def test_eval_encoder_binds_the_rules_on_the_params_mesh_and_pads_the_batch():
    """The Evaluator's encoder on live params sharded over data=4, tensor=2 embeds 5 texts (a
    batch that does not divide over the 4 data-parallel devices) like the same params on one
    device."""
    config = build_config(
        "configs/demo.py", tiny_overrides(mesh__data=4, mesh__tensor=2, optimizer__flatten=False)
    )
    mesh = shd.make_mesh(config.mesh)
    parts = build_parts(config, mesh)
    params = init_state(parts, 0).params
    tokens = synthetic_batch(config, 5)["tokens"]

    class Tokens:  # the encoder's tokenizer: these texts are their token rows already
        def encode(self, texts, max_len):
            return tokens[: len(texts)]

    encoder = Encoder(parts.method, parts.model, config.model, params, Tokens(), run_config=config)
    on_host = dataclasses.replace(encoder, params=jax.tree.map(np.asarray, params))
    assert encoder._mesh() == mesh and on_host._mesh() is None
    sharded = encoder.encode_texts(["t"] * 5)
    np.testing.assert_allclose(sharded, on_host.encode_texts(["t"] * 5), atol=1e-5)
    assert sharded.shape == (5, config.model.embed_dim)


def test_caption_decoder_binds_the_rules_on_the_params_mesh():
    """CoCa's greedy decoder (the captioning eval, `vljax caption`), as the Encoder compiles it
    for live params sharded over data=4, tensor=2, is traced with the rules bound: the
    activation constraints reach the lowered module (none without a mesh). Lowered only (a
    compile costs seconds); Encoder.caption shares `_in_batches` with the encoders (padding,
    sharded batches: the test above)."""
    config = build_config(
        "configs/coca.py:tiny",
        tiny_overrides(mesh__data=4, mesh__tensor=2, optimizer__flatten=False),
    )
    mesh = shd.make_mesh(config.mesh)
    parts = build_parts(config, mesh)
    size = config.model.image.image_size
    images = jax.ShapeDtypeStruct((8, size, size, 3), jnp.float32)
    max_len = config.model.text.max_len
    decode = parts.method.decode_captions
    for where, rules, bound in (
        (mesh, shd.logical_rules(config.sharding), True),
        (None, None, False),
    ):
        lowered = _jitted_decoder(parts.model, decode, max_len, where, rules).lower(
            parts.abstract.params, images
        )
        text = lowered.as_text().splitlines()
        constraints = [line for line in text if "sharding_constraint" in line]
        assert any('{"tensor"}]' in line for line in constraints) == bound, where
