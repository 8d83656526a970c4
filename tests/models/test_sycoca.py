"""SyCoCa: eval outputs are CoCa's, attentive / random masking, the MIM target, the loss term,
greedy captions, and the tiny recipe trains with a falling masked-image loss."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tests.random_params import random_variables
from vljax.errors import ConfigError
from vljax.losses.masked_image import masked_image_term
from vljax.models.coca import CoCa, greedy_decode
from vljax.models.layers import freeze
from vljax.models.sycoca import SyCoCa

MAX_LEN = 8
VOCAB = 32
PATCH = 4  # 16 px images: 16 patches of 4 x 4 x 3 = 48 pixels
PATCHES = 16


def tiny_config(**over):
    c = ml_collections.ConfigDict(
        dict(
            embed_dim=16,
            image=dict(
                image_size=16, patch_size=PATCH, width=32, depth=1, heads=2, mlp_dim=64,
                pool="gap", posemb="learn", proj="linear", pre_norm=False, stem="patch",
                stem_width=16, mask_ratio=0.0,
            ),
            text=dict(
                vocab_size=VOCAB, max_len=MAX_LEN, width=16, depth=1, heads=2, mlp_dim=32,
                causal=True, pool="eos", proj="linear",
            ),
            decoder=dict(depth=1, pool_queries=4),
            mim=dict(ratio=0.5, masking="attentive", decoder_depth=1),
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


IMAGES = np.random.RandomState(0).uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
TOKENS = np.array(
    [[5, 6, 7, 1, 0, 0, 0, 0], [9, 1, 0, 0, 0, 0, 0, 0], [3, 4, 5, 6, 7, 8, 9, 1]], np.int32
)
BATCH = {"image": IMAGES, "tokens": TOKENS}


def build(**over):
    return SyCoCa(config=freeze(tiny_config(**over).to_dict()))


@pytest.fixture(scope="module")
def attentive():
    model = build()
    v = random_variables(model, BATCH)
    apply = jax.jit(model.apply, static_argnames=("method", "train"))
    out = apply(v, BATCH, train=True, rngs={"mask": jax.random.key(1)})
    return model, v, apply, out


def reference_scores(params, image_tokens, txt_emb):
    """The relevance score recomputed from the params in plain jnp (float64): the contrastive
    pooler written out (layer norms, one learned query attending over the tokens with the
    attention kernels, output norm, img_proj, L2 norm), the gradient of <txt_emb, img_emb>
    with respect to every token, its norm per patch, normalised over the patches."""

    def ln(x, p, eps=1e-5):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / jnp.sqrt(var + eps) * p["scale"] + p["bias"]

    def similarity(tokens, pool, proj):
        a = pool["attn"]
        q = ln(pool["query"], pool["ln_q"])  # [1, D]
        kv = ln(tokens, pool["ln_kv"])
        qh = jnp.einsum("qd,dhk->qhk", q, a["query"]["kernel"]) + a["query"]["bias"]
        kh = jnp.einsum("ntd,dhk->nthk", kv, a["key"]["kernel"]) + a["key"]["bias"]
        vh = jnp.einsum("ntd,dhk->nthk", kv, a["value"]["kernel"]) + a["value"]["bias"]
        w = jax.nn.softmax(jnp.einsum("qhk,nthk->nhqt", qh, kh) / np.sqrt(qh.shape[-1]), -1)
        o = jnp.einsum("nhqt,nthk->nqhk", w, vh)
        o = jnp.einsum("nqhk,hkd->nqd", o, a["out"]["kernel"]) + a["out"]["bias"]
        e = ln(o, pool["ln_out"])[:, 0] @ proj
        e = e / jnp.linalg.norm(e, axis=-1, keepdims=True)
        return jnp.sum(e * txt_emb)

    # One compiled program: eagerly, every float64 op and its gradient compile on their own.
    @jax.jit
    def relevance_of(tokens, pool, proj):
        return jnp.linalg.norm(jax.grad(similarity)(tokens, pool, proj), axis=-1)

    with jax.enable_x64(True):
        pool = jax.tree.map(lambda a: np.asarray(a, np.float64), params["contrastive_pool"])
        proj = np.asarray(params["img_proj"]["kernel"], np.float64)
        relevance = np.asarray(relevance_of(np.asarray(image_tokens, np.float64), pool, proj))
    return relevance / relevance.sum(-1, keepdims=True)


def np_patchify(images, p):
    n, h, w, c = images.shape
    out = np.empty((n, (h // p) * (w // p), p * p * c), images.dtype)
    for i in range(h // p):
        for j in range(w // p):
            out[:, i * (w // p) + j] = images[:, i * p : (i + 1) * p, j * p : (j + 1) * p].reshape(
                n, -1
            )
    return out


def test_eval_outputs_are_cocas_on_the_coca_params(attentive):
    model, v, apply, out = attentive
    params = v["params"]
    assert set(params) - {"mim"} and "mim" in params
    coca = CoCa(config=model.config)
    coca_v = {"params": {k: x for k, x in params.items() if k != "mim"}}
    coca_shapes = nn.unbox(jax.eval_shape(coca.init, jax.random.key(0), BATCH))
    assert jax.tree.map(np.shape, coca_v) == jax.tree.map(np.shape, coca_shapes)
    want = jax.jit(coca.apply, static_argnames="train")(coca_v, BATCH)
    got = apply(v, BATCH)
    assert set(got) == set(want) == {"img/emb", "txt/emb", "caption/logits", "scale", "bias"}
    for k in ("img/emb", "txt/emb", "caption/logits", "scale"):
        np.testing.assert_array_equal(got[k], want[k])
    # Training keeps CoCa's outputs too (no dropout, no FLIP) and adds the MIM ones.
    assert set(out) == set(want) | {"mim/pred", "mim/target", "mim/index", "mim/score"}
    for k in ("img/emb", "txt/emb", "caption/logits"):
        np.testing.assert_allclose(out[k], want[k], atol=1e-5)
    m = PATCHES // 2
    assert out["mim/pred"].shape == out["mim/target"].shape == (3, m, PATCH * PATCH * 3)
    assert out["mim/index"].shape == (3, m) and out["mim/index"].dtype == jnp.int32
    assert out["mim/score"].shape == (3, PATCHES)


def test_attentive_masking_masks_the_top_patches_of_the_caption_relevance(attentive):
    model, v, apply, out = attentive
    tokens = apply(v, IMAGES, method=lambda m, x: m.img(x, return_tokens=True)[1])
    score = reference_scores(v["params"], tokens, np.asarray(out["txt/emb"], np.float64))
    np.testing.assert_allclose(out["mim/score"], score, rtol=1e-3, atol=1e-6)
    top = np.argsort(-score, axis=1)[:, : PATCHES // 2]
    for row, want in zip(np.asarray(out["mim/index"]), top, strict=True):
        assert sorted(row) == sorted(want)
    # Deterministic: another mask rng masks the same patches.
    again = apply(v, BATCH, train=True, rngs={"mask": jax.random.key(7)})
    np.testing.assert_array_equal(again["mim/index"], out["mim/index"])


def test_random_masking_draws_distinct_patches_per_key(attentive):
    _, v, _, _ = attentive
    model = build(**{"mim.masking": "random", "mim.ratio": 0.25})
    apply = jax.jit(model.apply, static_argnames=("method", "train"))
    a = np.asarray(apply(v, BATCH, train=True, rngs={"mask": jax.random.key(1)})["mim/index"])
    b = np.asarray(apply(v, BATCH, train=True, rngs={"mask": jax.random.key(2)})["mim/index"])
    assert a.shape == (3, 4)
    for row in (*a, *b):
        assert len(set(row)) == 4 and row.min() >= 0 and row.max() < PATCHES
    assert (np.sort(a, axis=1) != np.sort(b, axis=1)).any()
    assert (np.sort(a[0]) != np.sort(a[1])).any() or (np.sort(a[1]) != np.sort(a[2])).any()


def test_target_is_the_patchified_image_at_the_index(attentive):
    _, _, _, out = attentive
    patches = np_patchify(IMAGES, PATCH)
    index = np.asarray(out["mim/index"])
    want = np.stack([patches[i, index[i]] for i in range(len(index))])
    np.testing.assert_array_equal(out["mim/target"], want)


def test_reconstruction_never_sees_the_masked_pixels(attentive):
    """Changing the masked patches' pixels (with the mask held) changes no prediction: the
    masked pass zeroes them before the encoder."""
    model, v, _, out = attentive
    index = np.asarray(out["mim/index"])
    images = IMAGES.copy()
    for i, row in enumerate(index):
        for j in row:
            r, c = divmod(int(j), 16 // PATCH)
            images[i, r * PATCH : (r + 1) * PATCH, c * PATCH : (c + 1) * PATCH] = 0.7

    def pred(m, imgs):
        x, mask = m._unimodal(jnp.asarray(TOKENS), with_cls=True)
        masked = jnp.zeros((3, PATCHES), bool).at[jnp.arange(3)[:, None], index].set(True)
        pix = jnp.repeat(jnp.repeat(masked.reshape(3, 4, 4), PATCH, 1), PATCH, 2)[..., None]
        visible = m._image_tokens(jnp.where(pix, 0.0, imgs), True)
        return m.mim(visible, masked, x, mask[:, 0, -1, :])

    predict = jax.jit(lambda v, x: model.apply(v, x, method=pred))
    a = predict(v, IMAGES)
    b = predict(v, images)
    np.testing.assert_array_equal(a, b)
    got = np.take_along_axis(np.asarray(a), index[:, :, None], axis=1)
    np.testing.assert_allclose(out["mim/pred"], got, atol=1e-6)


def test_masked_image_term_is_the_mse(attentive):
    _, _, _, out = attentive
    value, metrics = masked_image_term(out, BATCH, None)
    pred, target = np.asarray(out["mim/pred"], np.float64), np.asarray(out["mim/target"])
    assert metrics == {}
    np.testing.assert_allclose(value, np.mean((pred - target) ** 2), rtol=1e-6)


def test_greedy_decode_works_on_the_subclass(attentive):
    model, v, _, _ = attentive
    caps = greedy_decode(model, v["params"], IMAGES, MAX_LEN)
    coca = CoCa(config=model.config)
    want = greedy_decode(coca, {k: x for k, x in v["params"].items() if k != "mim"}, IMAGES, 8)
    assert caps.shape == (3, MAX_LEN)
    np.testing.assert_array_equal(caps, want)


@pytest.mark.parametrize(
    "over,match",
    [
        ({"mim.ratio": 1.0}, "mim.ratio"),
        ({"mim.masking": "block"}, "mim.masking"),
        ({"image.mask_ratio": 0.5}, "mask_ratio"),
    ],
)
def test_bad_configs_are_refused(over, match):
    with pytest.raises(ConfigError, match=match):
        jax.eval_shape(build(**over).init, jax.random.key(0), BATCH)
