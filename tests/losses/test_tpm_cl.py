"""TPM-CL (vljax/losses/tpm_cl.py, vljax/losses/token_masking.py): the triplet partial-margin
loss against its definition written out in float64 (values and gradients, a batch whose
masked negatives all violate the margin and one where none does), sharded inputs on 8
devices, the masking against a brute-force relevance (float64 finite differences) and a
brute-force top-k, never EOS or PAD, deterministic per key; the "tpm_cl" term in the train
step's loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from loss_reference import mesh_of, shard

from vljax import sharding as shd
from vljax.config import build_config
from vljax.errors import ConfigError
from vljax.losses.token_masking import (
    mask_top_tokens,
    masked_fraction,
    random_scores,
    token_relevance,
)
from vljax.losses.tpm_cl import tpm_cl_loss
from vljax.methods.method import LOSS_RNG
from vljax.token_ids import EOS_ID, PAD_ID, UNK_ID
from vljax.train.state import build_parts, init_state
from vljax.train.step import make_loss_fn

B, D = 8, 6


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _triplets(seed=0):
    rng = np.random.default_rng(seed)
    zimg = _unit(rng.normal(size=(B, D)))
    ztxt = _unit(zimg + 0.5 * rng.normal(size=(B, D)))
    zneg = _unit(ztxt + 0.5 * rng.normal(size=(B, D)))
    fraction = rng.uniform(0.1, 1.0, B)
    return zimg, ztxt, zneg, fraction


def reference(zimg, ztxt, zneg, fraction, margin):
    """(loss, (dzimg, dztxt, dzneg)) in float64, row by row from the definition:
    h_i = margin f_i - (<zimg_i, ztxt_i> - <zimg_i, zneg_i>); loss = mean_i max(0, h_i);
    a row with h_i > 0 has gradients (-(ztxt_i - zneg_i), -zimg_i, zimg_i) / B, else 0."""
    zimg, ztxt, zneg = (np.asarray(a, np.float64) for a in (zimg, ztxt, zneg))
    n = len(zimg)
    total, grads = 0.0, tuple(np.zeros_like(zimg) for _ in range(3))
    for i in range(n):
        h = margin * fraction[i] - (zimg[i] @ ztxt[i] - zimg[i] @ zneg[i])
        if h > 0:
            total += h
            grads[0][i] = -(ztxt[i] - zneg[i]) / n
            grads[1][i] = -zimg[i] / n
            grads[2][i] = zimg[i] / n
    return total / n, grads


def _loss_and_grads(zimg, ztxt, zneg, fraction, margin):
    fn = lambda a, b, c: tpm_cl_loss(a, b, c, jnp.asarray(fraction, jnp.float32), margin=margin)
    args = [np.asarray(a, np.float32) for a in (zimg, ztxt, zneg)]
    return jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2)))(*args)


def test_loss_and_gradients_match_the_float64_definition():
    zimg, ztxt, zneg, fraction = _triplets()
    gaps = np.sum(zimg * (ztxt - zneg), axis=1)
    margin = float(np.median(gaps / fraction))  # about half the rows violate their margin
    violating = margin * fraction > gaps
    assert 0 < violating.sum() < B
    value, grads = _loss_and_grads(zimg, ztxt, zneg, fraction, margin)
    want, want_grads = reference(zimg, ztxt, zneg, fraction, margin)
    np.testing.assert_allclose(float(value), want, rtol=1e-5, atol=1e-7)
    for got, expected in zip(grads, want_grads):
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-7)


def test_negatives_inside_the_margin_all_count():
    """Masked captions embedded like the caption itself (gap 0): every row pays margin f_i."""
    zimg, ztxt, _, fraction = _triplets(1)
    value, grads = _loss_and_grads(zimg, ztxt, ztxt, fraction, 0.3)
    np.testing.assert_allclose(float(value), 0.3 * np.mean(fraction), rtol=1e-5)
    want, want_grads = reference(zimg, ztxt, ztxt, fraction, 0.3)
    for got, expected in zip(grads, want_grads):
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-7)


def test_negatives_beyond_the_margin_give_zero_loss_and_zero_gradient():
    zimg, ztxt, _, fraction = _triplets(2)
    value, grads = _loss_and_grads(zimg, zimg, -zimg, fraction, 0.5)  # gap 2 > 0.5 f_i
    assert float(value) == 0.0
    for g in grads:
        assert not np.any(np.asarray(g))


def test_sharded_inputs_on_8_devices_give_the_same_loss():
    zimg, ztxt, zneg, fraction = _triplets(3)
    mesh = mesh_of((8,), ("data",))
    fn = jax.jit(lambda a, b, c, f: tpm_cl_loss(a, b, c, f, margin=0.4))
    args = [shard(np.asarray(a, np.float32), mesh, ("data",)) for a in (zimg, ztxt, zneg)]
    got = fn(*args, shard(np.asarray(fraction, np.float32), mesh, ("data",)))
    np.testing.assert_allclose(float(got), reference(zimg, ztxt, zneg, fraction, 0.4)[0], 1e-5)


def test_bad_shapes_are_refused():
    zimg, ztxt, zneg, fraction = _triplets()
    with pytest.raises(ValueError, match="one shape"):
        tpm_cl_loss(zimg, ztxt, zneg[:, :3], fraction, margin=0.2)
    with pytest.raises(ValueError, match="masked_fraction"):
        tpm_cl_loss(zimg, ztxt, zneg, fraction[:3], margin=0.2)


# A toy text encoder with token gates: normalise(tanh(sum_k g_k E[t_k] + P_k) @ W), the same
# formula in jax (float32, what the masking sees) and numpy (float64, the brute force).
VOCAB, WIDTH, LENGTH = 20, 5, 7
_rng = np.random.default_rng(7)
E = _rng.normal(size=(VOCAB, WIDTH))
P = _rng.normal(size=(LENGTH, WIDTH))
W = _rng.normal(size=(WIDTH, D))


def toy_encode(tokens, token_gates=None):
    gates = jnp.ones(tokens.shape) if token_gates is None else token_gates
    x = jnp.asarray(E, jnp.float32)[tokens] * gates[..., None] + jnp.asarray(P, jnp.float32)
    z = jnp.tanh(jnp.sum(x, axis=1)) @ jnp.asarray(W, jnp.float32)
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


def toy_similarity64(zimg_row, tokens_row, gates_row):
    x = E[tokens_row] * gates_row[:, None] + P
    z = np.tanh(x.sum(axis=0)) @ W
    return zimg_row @ (z / np.linalg.norm(z))


def brute_relevance(zimg, tokens, h=1e-6):
    """Central differences in float64 of each caption's similarity to its image per gate."""
    out = np.zeros(tokens.shape)
    for i in range(len(tokens)):
        for k in range(tokens.shape[1]):
            up, down = np.ones(tokens.shape[1]), np.ones(tokens.shape[1])
            up[k] += h
            down[k] -= h
            s_up = toy_similarity64(zimg[i], tokens[i], up)
            out[i, k] = (s_up - toy_similarity64(zimg[i], tokens[i], down)) / (2 * h)
    return out


def brute_top_k(tokens, scores, ratio):
    """Per caption: its pieces (not EOS/PAD) sorted by descending score, earlier first on
    ties; the first min(n, max(1, round(ratio n))) of them."""
    chosen = np.zeros(tokens.shape, bool)
    for i, row in enumerate(tokens):
        pieces = [k for k, t in enumerate(row) if t not in (EOS_ID, PAD_ID)]
        k = min(len(pieces), max(1, round(ratio * len(pieces)))) if pieces else 0
        for j in sorted(pieces, key=lambda j: (-scores[i, j], j))[:k]:
            chosen[i, j] = True
    return chosen


def _captions(seed=0):
    """Captions of 3..6 pieces (ids >= 3), then EOS, then PAD; one with no piece at all."""
    rng = np.random.default_rng(seed)
    tokens = np.full((B, LENGTH), PAD_ID, np.int32)
    for i in range(B):
        n = 0 if i == B - 1 else rng.integers(3, LENGTH)
        tokens[i, :n] = rng.integers(3, VOCAB, n)
        tokens[i, n] = EOS_ID
    return tokens


def test_relevance_masking_picks_the_top_tokens_of_a_float64_brute_force():
    tokens = _captions()
    zimg = _unit(np.random.default_rng(1).normal(size=(B, D)))
    relevance = jax.jit(lambda z, t: token_relevance(toy_encode, z, t))
    got = np.asarray(relevance(zimg.astype(np.float32), tokens))
    brute = brute_relevance(zimg, tokens)
    np.testing.assert_allclose(got, brute, rtol=1e-3, atol=1e-5)

    @jax.jit(static_argnums=2)
    def mask(tokens, scores, ratio):
        masked_tokens, masked = mask_top_tokens(tokens, scores, ratio)
        return masked_tokens, masked, masked_fraction(tokens, masked)

    for ratio in (0.3, 0.5, 1.0):
        masked_tokens, masked, fraction = mask(tokens, got, ratio)
        want = brute_top_k(tokens, brute, ratio)
        np.testing.assert_array_equal(np.asarray(masked), want)
        np.testing.assert_array_equal(np.asarray(masked_tokens), np.where(want, UNK_ID, tokens))
        n = np.sum((tokens != EOS_ID) & (tokens != PAD_ID), axis=1)
        fraction = np.asarray(fraction)
        np.testing.assert_allclose(fraction, want.sum(1) / np.maximum(n, 1), rtol=1e-6)
    assert not np.any(np.asarray(masked)[-1]) and fraction[-1] == 0.0  # no piece: nothing


def test_masking_never_touches_eos_or_pad_even_when_they_score_highest():
    tokens = _captions(2)
    scores = np.where((tokens == EOS_ID) | (tokens == PAD_ID), 1e9, 0.0)
    scores += np.random.default_rng(3).uniform(size=tokens.shape)
    masked_tokens, masked = jax.jit(mask_top_tokens, static_argnums=2)(tokens, scores, 0.5)
    masked, masked_tokens = np.asarray(masked), np.asarray(masked_tokens)
    assert not np.any(masked & ((tokens == EOS_ID) | (tokens == PAD_ID)))
    np.testing.assert_array_equal(masked, brute_top_k(tokens, scores, 0.5))
    np.testing.assert_array_equal(masked_tokens == EOS_ID, tokens == EOS_ID)
    np.testing.assert_array_equal(masked_tokens == PAD_ID, tokens == PAD_ID)


def test_random_masking_is_deterministic_per_key():
    tokens = np.tile(_captions(4), (4, 1))
    masked_by = jax.jit(lambda key: mask_top_tokens(tokens, random_scores(key, tokens), 0.5)[1])
    key = jax.random.key(0)
    first = masked_by(key)
    again = masked_by(key)
    other = masked_by(jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
    assert np.any(np.asarray(first) != np.asarray(other))


@pytest.mark.parametrize("masking", ["relevance", "random"])
def test_tpm_cl_term_in_the_train_step_loss(masking):
    """configs/tpm_cl.py:tiny, one loss evaluation: loss/tpm_cl logged, finite, and the total
    is contrastive + tpm_cl; the text tower's gates at 1 leave its embedding unchanged."""
    config = build_config("configs/tpm_cl.py:tiny", [("loss.tpm_masking", masking)])
    mesh = shd.make_mesh(config.mesh)
    parts = build_parts(config, mesh)
    state = init_state(parts, 0)
    rng = np.random.default_rng(0)
    size, length, n = config.model.image.image_size, config.model.text.max_len, 8
    tokens = np.where(np.arange(length) < 5, rng.integers(3, 200, (n, length)), PAD_ID)
    tokens[:, 5] = EOS_ID
    batch = {
        "image": rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32),
        "tokens": tokens.astype(np.int32),
    }
    loss_fn = make_loss_fn(parts.method, parts.model, config, mesh)
    rngs = parts.method.rngs(jax.random.key(0), 0)
    assert LOSS_RNG in rngs
    global_batch = shd.global_batch(batch, mesh, config.sharding)
    loss, metrics = jax.jit(loss_fn)(state.params, global_batch, rngs)
    assert np.isfinite(float(metrics["loss/tpm_cl"])) and float(metrics["loss/tpm_cl"]) >= 0
    total = float(metrics["loss/contrastive"]) + float(metrics["loss/tpm_cl"])
    np.testing.assert_allclose(float(loss), total, rtol=1e-6)
    encode = jax.jit(
        lambda p, t, g: parts.model.apply({"params": p}, t, method="encode_texts", token_gates=g)
    )
    plain = encode(state.params, batch["tokens"], None)
    gated = encode(state.params, batch["tokens"], jnp.ones((n, length)))
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(gated))


def test_relevance_masking_with_a_text_encoder_without_gates_is_a_config_error():
    """CoCa's text encoder takes no token gates: relevance masking says so and names the
    fix, random masking works (the loss is only traced, not run)."""
    overrides = [("loss.terms", {"contrastive": 1.0, "caption": 1.0, "tpm_cl": 1.0})]
    config = build_config("configs/coca.py:tiny", overrides)
    mesh = shd.make_mesh(config.mesh)
    parts = build_parts(config, mesh)
    state = jax.eval_shape(lambda: init_state(parts, 0))
    batch = jax.eval_shape(lambda: parts.method.example_batch(config.model, 8))
    loss_fn = make_loss_fn(parts.method, parts.model, config, mesh)
    rngs = parts.method.rngs(jax.random.key(0), 0)
    with pytest.raises(ConfigError, match="tpm_masking='random'"):
        jax.eval_shape(loss_fn, state.params, batch, rngs)
    config.loss.tpm_masking = "random"
    loss_fn = make_loss_fn(parts.method, parts.model, config, mesh)
    jax.eval_shape(loss_fn, state.params, batch, rngs)
