"""CoCa: shapes, causality of the captioning logits, greedy decoding, padding invariance."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vljax.errors import ConfigError
from vljax.models import stack_layers
from vljax.models.coca import CoCa, greedy_decode
from vljax.models.layers import freeze
from vljax.token_ids import EOS_ID, PAD_ID

MAX_LEN = 8
VOCAB = 32


def tiny_config(**over):
    c = ml_collections.ConfigDict(
        dict(
            embed_dim=16,
            image=dict(
                image_size=16, patch_size=8, width=32, depth=1, heads=2, mlp_dim=64,
                pool="cls", posemb="learn", proj="linear", pre_norm=False, stem="patch",
                stem_width=16, mask_ratio=0.0,
            ),
            text=dict(
                vocab_size=VOCAB, max_len=MAX_LEN, width=16, depth=1, heads=2, mlp_dim=32,
                causal=True, pool="eos", proj="linear",
            ),
            decoder=dict(depth=2, pool_queries=4),
            activation="gelu", ln_eps=1e-5, dtype="float32", remat=False, scan=False,
            scale_init=10.0, bias_init=None,
        )
    )  # fmt: skip
    for k, v in over.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return c


def build(cfg):
    return CoCa(config=freeze(cfg.to_dict()))


IMAGES = np.random.RandomState(0).uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
TOKENS = np.array(
    [[5, 6, 7, 1, 0, 0, 0, 0], [9, 1, 0, 0, 0, 0, 0, 0], [3, 4, 5, 6, 7, 8, 9, 1]], np.int32
)
BATCH = {"image": IMAGES, "tokens": TOKENS}


def init(cfg, seed=0):
    model = build(cfg)
    return model, nn.unbox(jitted_init(model)(jax.random.key(seed), BATCH))


# One jitted init and apply per model (equal configs give equal, hashable modules): the tests
# of one config share their traces and compiled programs, where a jit per test traced, lowered
# and read each from the persistent cache again (about a second per test).
@functools.cache
def jitted_init(model):
    return jax.jit(model.init)


@functools.cache
def jitted(model):
    """`model.apply`, compiled: one program per shape beats op-by-op dispatch here."""
    return jax.jit(model.apply, static_argnames=("method", "train"))


def lively(params, scale=30.0):
    """Random-init params whose greedy captions are not one token repeated: the token and
    position embeddings (init std 0.02 / 0.01) scaled up so the residual stream carries them."""
    p = dict(params)
    p["embedding"] = {"embedding": params["embedding"]["embedding"] * scale}
    p["pos_embedding"] = params["pos_embedding"] * scale
    return p


@pytest.mark.parametrize("over", [{"bias_init": -10.0, "image.pool": "gap"}])
def test_output_shapes_and_unit_norm(over):
    model, v = init(tiny_config(**over))
    apply = jitted(model)
    out = apply(v, BATCH)
    assert set(out) == {"img/emb", "txt/emb", "caption/logits", "scale", "bias"}
    assert out["img/emb"].shape == (3, 16) and out["txt/emb"].shape == (3, 16)
    assert out["caption/logits"].shape == (3, MAX_LEN, VOCAB)
    assert out["caption/logits"].dtype == jnp.float32
    np.testing.assert_allclose(np.linalg.norm(out["img/emb"], axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["txt/emb"], axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["scale"], 10.0, rtol=1e-6)
    if "bias_init" in over:
        np.testing.assert_allclose(out["bias"], -10.0)
    else:
        assert out["bias"] is None
    # The methods compute the same values as __call__.
    zi = apply(v, IMAGES, method="encode_images")
    zt = apply(v, TOKENS, method="encode_texts")
    memory = apply(v, IMAGES, method="caption_memory")
    assert memory.shape == (3, 4, 32)
    logits = apply(v, memory, TOKENS, method="caption_logits")
    np.testing.assert_allclose(zi, out["img/emb"], atol=1e-6)
    np.testing.assert_allclose(zt, out["txt/emb"], atol=1e-6)
    np.testing.assert_allclose(logits, out["caption/logits"], atol=1e-5)


def test_param_tree_dtypes_and_logical_axes():
    model = build(tiny_config(scan=True, bias_init=-10.0))
    v = jax.eval_shape(model.init, jax.random.key(0), BATCH)
    assert set(v["params"]) == {
        "img", "contrastive_pool", "caption_pool", "img_proj", "embedding", "pos_embedding",
        "start", "cls", "unimodal", "txt_norm", "txt_proj", "multimodal", "decoder_norm",
        "lm_head", "log_scale", "bias",
    }  # fmt: skip
    leaves = jax.tree.leaves(v["params"], is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert leaves and all(isinstance(x, nn.LogicallyPartitioned) for x in leaves)
    for x in leaves:
        assert len(x.names) == x.value.ndim and x.value.dtype == jnp.float32
    p = nn.unbox(v["params"])
    assert p["pos_embedding"].shape == (1, MAX_LEN + 1, 16)
    assert p["caption_pool"]["query"].shape == (4, 32)
    assert p["contrastive_pool"]["query"].shape == (1, 32)
    assert p["lm_head"]["kernel"].shape == (16, VOCAB)
    blocks = p["multimodal"]["encoderblock"]
    assert blocks["cross_attn"]["key"]["kernel"].shape == (2, 32, 2, 8)  # [layers, img w, ...]
    assert "head" not in p["img"]  # image.proj is ignored: the poolers read the tokens


def test_scan_and_remat_equal_unrolled():
    model, v = init(tiny_config())
    apply = jitted(model)
    smodel = build(tiny_config(scan=True, remat=True))
    sapply = jitted(smodel)
    stacked = {"params": stack_layers(v["params"])}
    shapes = jax.eval_shape(smodel.init, jax.random.key(0), BATCH)
    assert jax.tree.map(np.shape, stacked) == jax.tree.map(np.shape, nn.unbox(shapes))
    a = apply(v, BATCH)
    b = sapply(stacked, BATCH)
    for k in ("img/emb", "txt/emb", "caption/logits"):
        np.testing.assert_allclose(a[k], b[k], atol=1e-5)


def test_caption_logits_are_causal():
    model, v = init(tiny_config())
    apply = jitted(model)
    v = {"params": lively(v["params"])}
    tokens = np.array([[5, 6, 7, 8, 9, 10, 11, 1]], np.int32)
    images = IMAGES[:1]
    memory = apply(v, images, method="caption_memory")
    base = np.asarray(apply(v, {"image": images, "tokens": tokens})["caption/logits"])
    for k in range(MAX_LEN):
        changed = tokens.copy()
        changed[0, k] = 20
        for logits in (
            apply(v, {"image": images, "tokens": changed})["caption/logits"],
            apply(v, memory, changed, method="caption_logits"),
        ):
            logits = np.asarray(logits)
            # Position p sees START, t_0..t_{p-1}: t_k reaches positions k + 1 onward only.
            np.testing.assert_allclose(logits[:, : k + 1], base[:, : k + 1], atol=1e-5)
            if k + 1 < MAX_LEN:
                assert np.abs(logits[:, k + 1 :] - base[:, k + 1 :]).max(axis=-1).min() > 1e-4
    # The image reaches every position through the memory.
    other = apply(v, {"image": IMAGES[1:2], "tokens": tokens})["caption/logits"]
    assert np.abs(np.asarray(other) - base).max(axis=-1).min() > 1e-4


def test_trailing_padding_is_ignored():
    model, v = init(tiny_config())
    apply = jitted(model)
    v = {"params": lively(v["params"])}
    short = np.array([[5, 6, 1], [9, 1, 0]], np.int32)
    long = np.array([[5, 6, 1, 0, 0, 0, 0, 0], [9, 1, 0, 0, 0, 0, 0, 0]], np.int32)
    a = apply(v, {"image": IMAGES[:2], "tokens": short})
    b = apply(v, {"image": IMAGES[:2], "tokens": long})
    np.testing.assert_allclose(a["txt/emb"], b["txt/emb"], atol=1e-6)
    np.testing.assert_allclose(a["caption/logits"], b["caption/logits"][:, :3], atol=1e-5)
    np.testing.assert_allclose(apply(v, short, method="encode_texts"), a["txt/emb"], atol=1e-6)
    # A row's padding does not reach its real positions either: row 1's [9, 1] alone.
    c = apply(v, {"image": IMAGES[1:2], "tokens": short[1:, :2]})
    np.testing.assert_allclose(c["caption/logits"], b["caption/logits"][1:, :2], atol=1e-5)
    np.testing.assert_allclose(c["txt/emb"], b["txt/emb"][1:], atol=1e-6)


def reference_decode(model, variables, images, max_len):
    """Step by step, no fixed buffer: the prefix so far plus one slot for the token to pick
    (the shifted decoder input never reads it), argmax at the last position, never PAD."""
    apply = jitted(model)
    memory = apply(variables, images, method="caption_memory")
    n = images.shape[0]
    out = np.zeros((n, 0), np.int32)
    done = np.zeros(n, bool)
    gaps = []
    for _ in range(max_len):
        prefix = np.concatenate([out, np.full((n, 1), PAD_ID, np.int32)], axis=1)
        logits = np.array(apply(variables, memory, prefix, method="caption_logits"))[:, -1]
        logits[:, PAD_ID] = -np.inf
        top2 = np.sort(logits, axis=-1)[:, -2:]
        gaps.extend((top2[:, 1] - top2[:, 0])[~done])
        tok = np.where(done, PAD_ID, logits.argmax(-1)).astype(np.int32)
        out = np.concatenate([out, tok[:, None]], axis=1)
        done |= tok == EOS_ID
        if done.all():
            out = np.pad(out, ((0, 0), (0, max_len - out.shape[1])), constant_values=PAD_ID)
            break
    return out, min(gaps)


def check_token_format(tokens):
    for row in tokens:
        eos = np.flatnonzero(row == EOS_ID)
        pieces = row[: eos[0]] if len(eos) else row
        assert (pieces != PAD_ID).all() and (pieces != EOS_ID).all()
        if len(eos):
            assert (row[eos[0] + 1 :] == PAD_ID).all()


@pytest.mark.parametrize("max_len", [5])
def test_greedy_decode_matches_stepwise_reference(max_len):
    model, v = init(tiny_config(), seed=1)
    params = lively(v["params"])
    images = np.random.RandomState(1).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    got = np.asarray(greedy_decode(model, params, images, max_len))
    assert got.shape == (4, max_len) and got.dtype == np.int32
    want, gap = reference_decode(model, {"params": params}, images, max_len)
    assert gap > 1e-3  # no near-ties: the comparison is meaningful
    np.testing.assert_array_equal(got, want)
    assert len({tuple(r) for r in got.tolist()}) > 1  # the rows differ
    assert max(len(set(r)) for r in got.tolist()) > 2  # not one token repeated
    check_token_format(got)
    # Variables instead of params, and another batch size, give the same rows.
    np.testing.assert_array_equal(
        greedy_decode(model, {"params": params}, images[:1], max_len), got[:1]
    )


def test_greedy_decode_pads_after_eos():
    """The EOS logit raised until some row ends early: everything after its EOS is PAD."""
    model, v = init(tiny_config(), seed=1)
    images = np.random.RandomState(1).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    for boost in np.arange(0.25, 8.0, 0.25):
        params = lively(v["params"])
        head = dict(params["lm_head"])
        head["bias"] = head["bias"].at[EOS_ID].add(boost)
        params["lm_head"] = head
        got = np.asarray(greedy_decode(model, params, images, MAX_LEN))
        eos_at = [np.flatnonzero(r == EOS_ID) for r in got]
        if any(len(e) and 1 <= e[0] < MAX_LEN - 1 for e in eos_at):
            break
    else:
        pytest.fail("no EOS bias made a row end early")
    want, gap = reference_decode(model, {"params": params}, images, MAX_LEN)
    assert gap > 1e-3
    np.testing.assert_array_equal(got, want)
    check_token_format(got)
    assert (got == PAD_ID).any()


@pytest.mark.parametrize("decoder", [None, {"depth": 0, "pool_queries": 4}, {"depth": 1}])
def test_bad_decoder_config(decoder):
    cfg = tiny_config()
    cfg.decoder = decoder
    with pytest.raises(ConfigError, match="decoder"):
        init(cfg)


def test_greedy_decode_never_emits_pad():
    """PAD is not a training target: even a head that favours it emits the next best id."""
    model, v = init(tiny_config(), seed=1)
    params = lively(v["params"])
    params["lm_head"] = dict(params["lm_head"])
    params["lm_head"]["bias"] = params["lm_head"]["bias"].at[PAD_ID].add(100.0)
    got = np.asarray(greedy_decode(model, params, IMAGES, MAX_LEN))
    check_token_format(got)
    assert (got[:, 0] != PAD_ID).all()
