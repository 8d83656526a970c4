"""The multi-caption loss terms (vljax/losses/terms.py) against the dense float64 CLIP/SigLIP
reference: per_caption is the mean of the K pairwise losses for each loss kind and impl (an
absent caption replaced by its example's first); sampled_caption trains on one caption per
step, the same one for the same step, not the same one for every step; one_to_k refuses a
kind or impl it has no form for."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from loss_reference import assert_close, caption_embeddings, mesh_of, shard, some_absent
from loss_reference import reference as pairwise_reference

from vljax.errors import ConfigError
from vljax.losses.terms import TERMS
from vljax.methods import LossContext, get_method
from vljax.methods.method import LOSS_RNG

B, K, D = 16, 3, 8
MESH = mesh_of((8,), ("data",))


def context(kind="softmax", impl="all_gather", group_size=None):
    cfg = dict(kind=kind, impl=impl, chunk=None, group_size=group_size)
    return LossContext(mesh=MESH, batch_axes=("data",), loss_config=ml_collections.ConfigDict(cfg))


def outputs(zimg, ztxt, valid, scale, bias=None):
    put = lambda x: shard(x, MESH, ("data",))
    return {
        "img/emb": put(zimg),
        "txt/multi_emb": put(ztxt),
        "txt/multi_valid": put(valid),
        "scale": jnp.float32(scale),
        "bias": None if bias is None else jnp.float32(bias),
    }


def mean_pairwise(zimg, ztxt, scale, bias, kind, group_rows=None):
    """The mean over k of the dense float64 pairwise loss of the images and caption k."""
    losses = [
        pairwise_reference(zimg, ztxt[:, k], scale, bias, kind, group_rows)[0]
        for k in range(ztxt.shape[1])
    ]
    return float(np.mean(losses)), losses


@pytest.mark.parametrize(
    "kind,impl,group_size",
    [
        ("softmax", "all_gather", None),
        ("sigmoid", "ring", None),
        ("softmax", "grouped", 2),
    ],  # fmt: skip
)
def test_per_caption_is_the_mean_of_the_pairwise_losses(kind, impl, group_size):
    zimg, ztxt = caption_embeddings(B, K, D, seed=1)
    bias = -5.0 if kind == "sigmoid" else None
    ctx = context(kind, impl, group_size)
    term = jax.jit(lambda outs: TERMS["per_caption"](outs, None, ctx)[0])
    got = term(outputs(zimg, ztxt, np.ones((B, K), bool), 6.0, bias))
    group_rows = None if group_size is None else group_size * B // 8
    want, _ = mean_pairwise(zimg, ztxt, 6.0, bias or 0.0, kind, group_rows)
    assert_close(got, want, 1e-5, f"per_caption {kind} {impl}")


def test_per_caption_trains_an_absent_caption_as_its_examples_first():
    zimg, ztxt = caption_embeddings(B, K, D, seed=2)
    valid = some_absent(B, K, seed=2)
    valid[3] = [False, True, False]  # the first present caption is not caption 0
    filled = ztxt.copy()
    for i, k in zip(*np.nonzero(~valid), strict=True):
        filled[i, k] = ztxt[i, np.argmax(valid[i])]
    ctx = context()
    got = jax.jit(lambda outs: TERMS["per_caption"](outs, None, ctx)[0])(
        outputs(zimg, ztxt, valid, 6.0)
    )
    assert_close(got, mean_pairwise(zimg, filled, 6.0, 0.0, "softmax")[0], 1e-5, "filled")


def test_sampled_caption_picks_one_caption_per_step():
    zimg, ztxt = caption_embeddings(B, K, D, seed=3)
    _, per_k = mean_pairwise(zimg, ztxt, 6.0, 0.0, "softmax")
    ctx = context()
    term = jax.jit(
        lambda outs, key: TERMS["sampled_caption"](outs, None, dataclasses.replace(ctx, rng=key))
    )
    outs = outputs(zimg, ztxt, np.ones((B, K), bool), 6.0)
    method, run_key = get_method("multi_caption"), jax.random.key(0)
    picks = []
    for step in range(8):
        value, metrics = term(outs, method.rngs(run_key, step)[LOSS_RNG])
        k = int(metrics["sampled_caption/k"])
        assert_close(value, per_k[k], 1e-5, f"step {step}: caption {k}")
        picks.append((k, float(value)))
    assert len({k for k, _ in picks}) > 1  # the pick changes with the step
    value, metrics = term(outs, method.rngs(run_key, 5)[LOSS_RNG])  # step 5 again (a resume)
    assert (int(metrics["sampled_caption/k"]), float(value)) == picks[5]


def test_one_to_k_refuses_what_it_has_no_form_for():
    zimg, ztxt = caption_embeddings(B, K, D, seed=4)
    outs = outputs(zimg, ztxt, np.ones((B, K), bool), 6.0, -5.0)
    with pytest.raises(ConfigError, match="loss.kind=softmax"):
        TERMS["one_to_k"](outs, None, context(kind="sigmoid"))
    with pytest.raises(ConfigError, match="loss.impl=all_gather"):
        TERMS["one_to_k"](outs, None, context(impl="ring"))
