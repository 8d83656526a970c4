"""Model tests: shapes, sharding metadata, scan/remat equivalence, masking, dtypes."""

import pathlib
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import Mesh

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))  # for `configs`
from configs import common  # noqa: E402
from vljax.methods.clip import build_model
from vljax.models import stack_layers, unstack_layers
from vljax.models.vit import PatchEmbedding


def tiny_config(**over):
    c = ml_collections.ConfigDict(
        dict(
            embed_dim=16,
            image=dict(
                image_size=16, patch_size=4, width=32, depth=2, heads=4, mlp_dim=64,
                pool="cls", posemb="learn", proj="linear", pre_norm=False, stem="patch",
                stem_width=16, mask_ratio=0.0,
            ),
            text=dict(
                vocab_size=64, max_len=8, width=32, depth=2, heads=4, mlp_dim=64,
                causal=True, pool="eos", proj="linear",
            ),
            activation="gelu", ln_eps=1e-5, dtype="float32", attention="xla", remat=False,
            remat_policy="full", scan=False, scale_init=10.0, bias_init=None,
        )
    )  # fmt: skip
    for k, v in over.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return c


IMAGES = np.random.RandomState(0).uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
TOKENS = np.array(
    [[5, 6, 7, 1, 0, 0, 0, 0], [9, 1, 0, 0, 0, 0, 0, 0], [3, 4, 5, 6, 7, 8, 9, 1]], np.int32
)
BATCH = {"image": IMAGES, "tokens": TOKENS}


def init(cfg, seed=0):
    model = build_model(cfg)
    variables = model.init(jax.random.key(seed), BATCH)
    return model, variables


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"image.pool": "gap", "image.posemb": "sincos2d"},
        {"image.pool": "map", "image.proj": "none", "embed_dim": 32, "text.proj": "linear_bias"},
        {"image.pre_norm": True, "activation": "quick_gelu"},
        {"text.causal": False, "text.pool": "last", "activation": "gelu_tanh"},
        {"text.pool": "first"},
        {"text.pool": "mean", "bias_init": -10.0},
    ],
)
def test_output_shapes(over):
    model, variables = init(tiny_config(**over))
    out = model.apply(variables, BATCH)
    assert out["img/emb"].shape == (3, model.config["embed_dim"])
    assert out["txt/emb"].shape == (3, model.config["embed_dim"])
    np.testing.assert_allclose(np.linalg.norm(out["img/emb"], axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["txt/emb"], axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["scale"], 10.0, rtol=1e-6)
    assert (out["bias"] is None) == (model.config["bias_init"] is None)
    zi = model.apply(variables, IMAGES, method="encode_images")
    np.testing.assert_allclose(zi, out["img/emb"], atol=1e-6)


def test_param_names_and_layout():
    _, v = init(tiny_config(**{"image.pool": "map", "bias_init": -10.0}))
    p = nn.unbox(v["params"])
    assert set(p) == {"img", "txt", "log_scale", "bias"}
    blk = p["img"]["encoder"]["encoderblock_0"]
    assert blk["attn"]["query"]["kernel"].shape == (32, 4, 8)
    assert blk["attn"]["out"]["kernel"].shape == (4, 8, 32)
    assert set(blk["ln_1"]) == {"scale", "bias"}
    assert p["img"]["embedding"]["kernel"].shape == (4, 4, 3, 32)
    assert p["img"]["map"]["probe"].shape == (1, 1, 32)
    assert p["txt"]["embedding"]["embedding"].shape == (64, 32)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(p))


def test_logical_axes_and_fsdp_sharding():
    cfg = tiny_config(**{"image.pool": "map", "bias_init": -10.0, "scan": True})
    _, v = init(cfg)
    leaves = jax.tree.leaves(v["params"], is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert leaves and all(isinstance(x, nn.LogicallyPartitioned) for x in leaves)
    for x in leaves:
        assert len(x.names) == x.value.ndim
    mesh = Mesh(np.array(jax.devices()[:8]).reshape(1, 8, 1), ("data", "fsdp", "tensor"))
    rules = common.fsdp_rules()
    specs = nn.get_partition_spec(v)
    shardings = nn.logical_to_mesh_sharding(specs, mesh, rules)
    n_sharded = 0
    for x, s in zip(leaves, jax.tree.leaves(shardings["params"])):
        if "embed" in x.names and x.value.shape[x.names.index("embed")] % 8 == 0:
            arr = jax.device_put(x.value, s)
            shard = arr.addressable_shards[0].data.shape
            dim = x.names.index("embed")
            assert shard[dim] == x.value.shape[dim] // 8, (x.names, s)
            n_sharded += 1
    assert n_sharded > 20


def test_scan_equals_unrolled():
    model, v = init(tiny_config())
    p = nn.unbox(v["params"])
    smodel = build_model(tiny_config(scan=True))
    sv = nn.unbox(smodel.init(jax.random.key(1), BATCH))
    stacked = stack_layers(p)
    assert jax.tree.map(np.shape, stacked) == jax.tree.map(np.shape, sv["params"])
    a = model.apply({"params": p}, BATCH)
    b = smodel.apply({"params": stacked}, BATCH)
    for k in ("img/emb", "txt/emb"):
        np.testing.assert_allclose(a[k], b[k], atol=1e-5)
    back = unstack_layers(stacked)
    jax.tree.map(np.testing.assert_array_equal, back, p)


@pytest.mark.parametrize("policy", ["full", "dots_saveable"])
def test_remat_same_output_and_grads(policy):
    model, v = init(tiny_config())
    rmodel = build_model(tiny_config(remat=True, remat_policy=policy))
    p = nn.unbox(v["params"])

    def loss(m, params):
        return jnp.sum(m.apply({"params": params}, TOKENS, method="encode_texts") ** 3)

    la, ga = jax.jit(jax.value_and_grad(lambda q: loss(model, q)))(p)
    lb, gb = jax.jit(jax.value_and_grad(lambda q: loss(rmodel, q)))(p)
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5), ga, gb)


@pytest.mark.parametrize("pool,causal", [("eos", True), ("mean", False), ("eos", False)])
def test_padding_after_eos_is_ignored(pool, causal):
    model, v = init(tiny_config(**{"text.pool": pool, "text.causal": causal}))
    short = np.array([[5, 6, 1, 0, 0, 0]], np.int32)  # shorter than max_len is allowed
    full = np.array([[5, 6, 1, 0, 0, 0, 0, 0]], np.int32)
    a = model.apply(v, short, method="encode_texts")
    b = model.apply(v, full, method="encode_texts")
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_causal_attention_does_not_look_ahead():
    cfg = tiny_config(**{"text.pool": "first"})
    model, v = init(cfg)
    a = np.array([[5, 6, 7, 8, 9, 10, 11, 1]], np.int32)
    b = a.copy()
    b[0, 4] = 30
    za = model.apply(v, a, method="encode_texts")
    zb = model.apply(v, b, method="encode_texts")
    np.testing.assert_allclose(za, zb, atol=1e-6)
    # Bidirectional: the same change does reach position 0.
    model2, v2 = init(tiny_config(**{"text.pool": "first", "text.causal": False}))
    za = model2.apply(v2, a, method="encode_texts")
    zb = model2.apply(v2, b, method="encode_texts")
    assert np.abs(za - zb).max() > 1e-4


def test_bf16_compute_with_fp32_params():
    model, v = init(tiny_config(dtype="bfloat16", **{"image.pool": "map"}))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nn.unbox(v)))
    out = model.apply(v, BATCH)
    assert out["img/emb"].dtype == jnp.float32
    ref = build_model(tiny_config(**{"image.pool": "map"})).apply(v, BATCH)
    np.testing.assert_allclose(out["img/emb"], ref["img/emb"], atol=5e-2)


def test_bad_config_errors():
    with pytest.raises(ValueError, match="embed_dim"):
        init(tiny_config(**{"image.proj": "none"}))
    with pytest.raises(ValueError, match="image.pool"):
        init(tiny_config(**{"image.pool": "avg"}))


def test_full_size_recipe_builds_abstractly():
    cfg = common.base_config()
    model = build_model(cfg.model)
    img = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32)
    tok = jax.ShapeDtypeStruct((2, 64), jnp.int32)
    batch = {"image": img, "tokens": tok}
    shapes = jax.eval_shape(model.init, jax.random.key(0), batch)
    n = sum(np.prod(x.shape) for x in jax.tree.leaves(nn.unbox(shapes)))
    assert 140e6 < n < 160e6  # ViT-B/16 + text B: ~150M like CLIP ViT-B/16
    out = jax.eval_shape(model.apply, nn.unbox(shapes), batch)
    assert out["img/emb"].shape == (2, 512)


@pytest.mark.parametrize(
    "recipe,lo,hi", [("clip_vit_b16", 145e6, 155e6), ("siglip_vit_b16", 195e6, 210e6)]
)
def test_recipes_build_abstractly(recipe, lo, hi):
    import importlib

    cfg = importlib.import_module(f"configs.{recipe}").get_config()
    model = build_model(cfg.model)
    i, t = cfg.model.image.image_size, cfg.model.text.max_len
    img = jax.ShapeDtypeStruct((2, i, i, 3), jnp.float32)
    tok = jax.ShapeDtypeStruct((2, t), jnp.int32)
    batch = {"image": img, "tokens": tok}
    shapes = jax.eval_shape(model.init, jax.random.key(0), batch)
    n = sum(np.prod(x.shape) for x in jax.tree.leaves(nn.unbox(shapes)))
    assert lo < n < hi, n  # CLIP ViT-B/16 ~150M, SigLIP B/16 ~203M
    out = jax.eval_shape(model.apply, nn.unbox(shapes), batch)
    assert out["img/emb"].shape == (2, cfg.model.embed_dim) and out["img/emb"].dtype == jnp.float32


def test_custom_eos_and_no_padding_mask():
    """Imported CLIP: EOS is another id, pads are a real token and are not masked."""
    cfg = tiny_config(**{"text.eos_id": 63, "text.pad_id": None})
    model, v = init(cfg)
    a = np.array([[5, 6, 63, 63, 63, 63, 63, 63]], np.int32)
    b = np.array([[5, 6, 63, 9, 9, 9, 9, 9]], np.int32)
    np.testing.assert_allclose(
        model.apply(v, a, method="encode_texts"),
        model.apply(v, b, method="encode_texts"),
        atol=1e-6,
    )


@pytest.mark.parametrize("stem", ["conv", "conv_pool"])
def test_conv_stems_against_lax_reference(stem):
    # The stem and patch embedding recomputed from the params with lax convolutions and
    # reduce_window, compared with the embedding the model computes.
    # stem_width 8: the stem's convs have 8 then 16 channels.
    over = {"image.stem": stem, "image.pool": "gap", "image.stem_width": 8}
    model, variables = init(tiny_config(**over))
    params = nn.unbox(variables["params"])["img"]
    x = jnp.asarray(IMAGES)
    stride = 1 if stem == "conv_pool" else 2
    dims = ("NHWC", "HWIO", "NHWC")
    for i in range(2):  # patch_size 4 = two halvings
        p = params[f"stem_{i}"]
        x = jax.lax.conv_general_dilated(
            x, p["kernel"], (stride, stride), "SAME", dimension_numbers=dims
        )
        x = jax.nn.gelu(x + p["bias"], approximate=True)  # flax nn.gelu: the tanh form
        if stem == "conv_pool":
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    assert x.shape == (3, 4, 4, 16)
    e = params["embedding"]
    want = jnp.einsum("nhwc,cd->nhwd", x, e["kernel"][0, 0]) + e["bias"]
    _, inter = model.apply(variables, BATCH, capture_intermediates=True, mutable=True)
    got = inter["intermediates"]["img"]["embedding"]["__call__"][0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_patch_dropout_keeps_a_random_ordered_subset_and_the_cls_token():
    """FLIP: each image keeps round((1 - r) n) of its n patches, in order, cls first."""
    from vljax.models.vit import drop_patches

    n, width = 16, 2
    # token t of image b holds (b, t): what was kept can be read off the output.
    x = np.stack(np.meshgrid(np.arange(3), np.arange(n + 1), indexing="ij"), -1)
    drop = jax.jit(drop_patches, static_argnums=(1, 3))  # one program, not one per op
    out = np.asarray(drop(x.astype(np.float32), 0.75, jax.random.key(0), True))
    assert out.shape == (3, 1 + 4, width)
    kept = [out[b, :, 1].astype(int).tolist() for b in range(3)]
    for b, tokens in enumerate(kept):
        assert tokens[0] == 0  # cls
        assert tokens[1:] == sorted(set(tokens[1:])) and all(1 <= t <= n for t in tokens[1:])
        assert (out[b, :, 0] == b).all()
    assert len({tuple(t) for t in kept}) > 1  # images draw their own masks
    again = drop(x.astype(np.float32), 0.75, jax.random.key(0), True)
    np.testing.assert_array_equal(out, np.asarray(again))


def test_patch_dropout_is_off_at_eval_and_on_in_training():
    masked_model = build_model(tiny_config(**{"image.mask_ratio": 0.5}))
    model, v = init(tiny_config())
    np.testing.assert_array_equal(
        np.asarray(model.apply(v, IMAGES, method="encode_images")),
        np.asarray(masked_model.apply(v, IMAGES, method="encode_images")),
    )
    rngs = {"mask": jax.random.key(3)}
    trained = masked_model.apply(v, BATCH, train=True, rngs=rngs)["img/emb"]
    unmasked = model.apply(v, BATCH, train=True)["img/emb"]
    assert np.abs(np.asarray(trained) - np.asarray(unmasked)).max() > 1e-3


@pytest.mark.parametrize("patch, size", [(8, 32), (16, 40), (1, 5)])
def test_patch_embedding_is_the_strided_convolution(patch, size):
    """PatchEmbedding (patches times one matmul) against the p x p, stride-p VALID convolution
    summed out in float64 numpy, with a size that leaves a partial patch (40 px at 16)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, size, size, 3)).astype(np.float32)
    module = PatchEmbedding(width=6, patch_size=patch)
    params = jax.tree.map(lambda a: a + 0.1, module.init(jax.random.key(0), x))
    kernel = np.asarray(nn.unbox(params)["params"]["kernel"], np.float64)
    bias = np.asarray(nn.unbox(params)["params"]["bias"], np.float64)
    cells = size // patch
    want = np.zeros((2, cells, cells, 6))
    for i in range(cells):
        for j in range(cells):
            window = x[:, i * patch : (i + 1) * patch, j * patch : (j + 1) * patch]
            want[:, i, j] = np.einsum("npqc,pqcw->nw", window, kernel) + bias
    np.testing.assert_allclose(module.apply(params, x), want, rtol=1e-5, atol=1e-5)
