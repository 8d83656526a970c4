"""The attention implementations (model.attention) against a float64 numpy reference: values
and gradients, with a causal + padding mask, no mask, and one query (SigLIP's MAP probe).

On CPU "cudnn" runs `jax.nn.dot_product_attention` with its XLA implementation: the call, the
layout, the mask and the scale the GPU path uses, up to the fused kernel itself."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.random_params import random_variables
from vljax.models.layers import attend
from vljax.models.text import TextTransformer
from vljax.models.vit import VisionTransformer


def reference(q, k, v, mask, d_out):
    """softmax(q k^T / sqrt(d)) v and its gradients, in float64, written out by hand."""
    q, k, v, d_out = (np.asarray(a, np.float64).transpose(0, 2, 1, 3) for a in (q, k, v, d_out))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    out = p @ v
    d_v = p.transpose(0, 1, 3, 2) @ d_out
    d_p = d_out @ v.transpose(0, 1, 3, 2)
    d_s = p * (d_p - (d_p * p).sum(-1, keepdims=True)) / np.sqrt(q.shape[-1])
    d_q, d_k = d_s @ k, d_s.transpose(0, 1, 3, 2) @ q
    back = lambda a: a.transpose(0, 2, 1, 3)
    return back(out), (back(d_q), back(d_k), back(d_v))


def causal_padding_mask(lengths, n):
    valid = np.arange(n)[None, :] < np.asarray(lengths)[:, None]
    return valid[:, None, None, :] & np.tril(np.ones((n, n), bool))[None, None]


@pytest.mark.parametrize("impl", ["xla", "cudnn"])
@pytest.mark.parametrize("case", ["causal_padding", "no_mask", "one_query"])
def test_attention_matches_float64_reference(impl, case):
    rng = np.random.default_rng(0)
    b, n, heads, d = 3, 7, 2, 8
    q_len = 1 if case == "one_query" else n
    q = rng.normal(size=(b, q_len, heads, d)).astype(np.float32)
    k, v = (rng.normal(size=(b, n, heads, d)).astype(np.float32) for _ in range(2))
    d_out = rng.normal(size=(b, q_len, heads, d)).astype(np.float32)
    mask = causal_padding_mask([7, 4, 1], n) if case == "causal_padding" else None

    def f(q, k, v):
        m = None if mask is None else jnp.asarray(mask)
        out = attend(q, k, v, m, impl, jnp.float32)
        return jnp.sum(out * d_out), out

    (_, out), grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))(q, k, v)
    ref_out, ref_grads = reference(q, k, v, mask, d_out)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    for got, want, name in zip(grads, ref_grads, ("dq", "dk", "dv")):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=name)


def test_bfloat16_implementations_agree():
    """At the GPU's compute dtype both keep float32 logits and softmax: equal within bf16's
    rounding of the output."""
    rng = np.random.default_rng(1)
    q, k, v = (rng.normal(size=(2, 9, 2, 16)).astype(jnp.bfloat16) for _ in range(3))
    mask = causal_padding_mask([9, 5], 9)

    @jax.jit(static_argnums=0)  # one program per implementation, not one per op
    def run(impl, q, k, v, mask):
        return attend(q, k, v, mask, impl, jnp.bfloat16).astype(jnp.float32)

    a = run("xla", q, k, v, mask)
    b = run("cudnn", q, k, v, mask)
    np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-2)


def tower_outputs_and_grads(module, inputs):
    """The tower's output and the gradient of its sum of squares, each one compiled program (op
    by op, the backward pass compiled hundreds), at params of the tower's shapes."""
    params = random_variables(module, inputs)
    f = lambda p: jnp.sum(module.apply(p, inputs) ** 2)
    return jax.jit(module.apply)(params, inputs), jax.jit(jax.grad(f))(params)


@pytest.mark.parametrize("tower", ["vit", "text_causal", "text_bidirectional", "text_no_pad_id"])
def test_towers_padded_to_even_length_equal_unpadded(tower):
    """Under "cudnn" a tower with an odd number of tokens (ViT: 16 patches + cls; text: 7)
    pads q, k and v to even in every attention call (`fused_attention`): its embeddings and
    parameter gradients equal the "xla" tower's, which pads nothing."""
    rng = np.random.default_rng(0)
    common = dict(depth=2, heads=2, mlp_dim=32, width=16, proj_dim=8)
    if tower == "vit":
        make = lambda impl: VisionTransformer(image_size=32, patch_size=8, attention=impl, **common)
        inputs = jnp.asarray(rng.normal(size=(3, 32, 32, 3)), jnp.float32)
    else:
        pad_id = None if tower == "text_no_pad_id" else 0
        causal = tower != "text_bidirectional"
        make = lambda impl: TextTransformer(
            vocab_size=50, max_len=7, causal=causal, pad_id=pad_id, attention=impl, **common
        )
        tokens = rng.integers(3, 50, size=(3, 7))
        tokens[1, 4:] = 0  # padding
        tokens[2, 2:] = 0
        tokens[:, 6] = np.where(tokens[:, 6] == 0, 0, 2)
        inputs = jnp.asarray(tokens, jnp.int32)
    xla_out, xla_grads = tower_outputs_and_grads(make("xla"), inputs)
    cudnn_out, cudnn_grads = tower_outputs_and_grads(make("cudnn"), inputs)
    np.testing.assert_allclose(cudnn_out, xla_out, rtol=1e-5, atol=1e-6)
    for (path, got), want in zip(
        jax.tree_util.tree_leaves_with_path(cudnn_grads), jax.tree.leaves(xla_grads)
    ):
        # float32 rounding, relative to each gradient's scale (sums of many products); the
        # key biases' gradients are zero up to rounding (softmax ignores a per-row shift)
        atol = 1e-6 + 1e-5 * float(np.abs(want).max())
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=atol, err_msg=str(path))
