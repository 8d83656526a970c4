"""Symile's loss (vljax/losses/symile.py) against a dense float64 evaluation of its formula:
M = 3 and 4 modalities, O(N) and O(N^2) negatives, 1 and 8 devices, tiles that do not divide
the combinations, missing modalities; values and gradients in every z and the scale; the
n_squared memory bound."""

import functools
import itertools
import string

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from loss_reference import assert_close, mesh_of, shard

from vljax.losses.symile import symile_loss


def _formula(zs, s, negatives):
    """The loss written out over all rows (no sharding, no tiling), for float64 inputs."""
    n_mod, batch = len(zs), zs[0].shape[0]
    terms = []
    if negatives == "n":
        for m in range(n_mod):
            query = jnp.prod(jnp.stack([zs[k] for k in range(n_mod) if k != m]), axis=0)
            logits = s * jnp.einsum("id,jd->ij", query, zs[m])
            terms.append(jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(logits)))
        return sum(terms) / n_mod
    # n_squared: for the target m and each anchor a != m, the anchor is row i and every other
    # modality (the target included) its own independent row index.
    rows = jnp.arange(batch)
    for m, a in itertools.permutations(range(n_mod), 2):
        others = [k for k in range(n_mod) if k not in (a, m)] + [m]  # the target last
        letter = dict(zip(others[:-1], string.ascii_lowercase[10:]))  # k, l, ... (not i, d, j)
        letter[a], letter[m] = "i", "j"
        subscripts = ",".join(letter[k] + "d" for k in range(n_mod))
        out = "i" + "".join(letter[k] for k in others)
        logits = s * jnp.einsum(f"{subscripts}->{out}", *zs)  # [B] * M
        positive = logits[(rows,) * n_mod]
        lse = jax.nn.logsumexp(logits.reshape(batch, -1), axis=1)
        terms.append(jnp.mean(lse - positive))
    return sum(terms) / len(terms)


@functools.partial(jax.jit, static_argnames="negatives")
def _value_and_grads(zs, s, masks, negatives):
    """One compiled program (eagerly, each op of the formula would compile its own)."""

    def loss(zs, s):
        if masks is not None:
            zs = [z if mk is None else jnp.where(mk[:, None], z, 1.0) for z, mk in zip(zs, masks)]
        return _formula(zs, s, negatives)

    return jax.value_and_grad(loss, argnums=(0, 1))(zs, s)


def reference(zs, s, negatives, masks=None):
    """Loss and gradients (every z, then s) in float64; a missing vector is all ones."""
    with jax.enable_x64(True):
        z64 = [jnp.asarray(np.asarray(z, np.float64)) for z in zs]
        s64 = jnp.asarray(np.float64(s))
        val, (gz, gs) = _value_and_grads(z64, s64, masks, negatives=negatives)
        assert val.dtype == np.float64
        return float(val), [np.asarray(g) for g in gz], np.asarray(gs)


def modalities(n_mod, batch, dim=6, seed=0, noise=0.7):
    """M L2-normalised embeddings per example, correlated within an example."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(batch, dim))
    zs = []
    for _ in range(n_mod):
        z = base + noise * rng.normal(size=(batch, dim))
        zs.append((z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32))
    return zs


def random_masks(n_mod, batch, seed):
    """Modality 0 always present (None), the others missing with probability 0.3."""
    rng = np.random.default_rng(seed)
    return [None] + [rng.random(batch) > 0.3 for _ in range(n_mod - 1)]


def run(zs, s, mesh, batch_axes=("data",), **kw):
    masks = kw.pop("masks", None)
    if masks is not None:
        kw["masks"] = [None if m is None else shard(m, mesh, batch_axes) for m in masks]
    fn = lambda zs, s: symile_loss(zs, scale=s, mesh=mesh, batch_axes=batch_axes, **kw)
    args = ([shard(z, mesh, batch_axes) for z in zs], jnp.float32(s))
    val, (gz, gs) = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(*args)
    return float(val), gz, gs


def check(got, want, rtol=1e-5):
    val, gz, gs = got
    ref_val, ref_gz, ref_gs = want
    assert_close(val, ref_val, rtol, "loss")
    for m, (g, r) in enumerate(zip(gz, ref_gz)):
        assert_close(g, r, rtol, f"z{m}")
    assert_close(gs, ref_gs, rtol, "scale")


@pytest.mark.parametrize(
    "n_mod,negatives,n_dev,batch,chunk,masked",
    [
        (3, "n", 1, 8, None, False),
        (3, "n", 8, 16, None, False),
        (4, "n", 1, 6, None, False),
        (4, "n", 8, 8, None, True),
        (3, "n_squared", 1, 6, None, False),
        (3, "n_squared", 8, 8, 3, False),
        (3, "n_squared", 8, 8, None, True),
        (4, "n_squared", 8, 8, 5, False),
    ],
)
def test_matches_dense_float64_reference(n_mod, negatives, n_dev, batch, chunk, masked):
    zs = modalities(n_mod, batch, seed=10 * n_mod + n_dev)
    masks = random_masks(n_mod, batch, seed=n_dev) if masked else None
    s = 6.0
    got = run(zs, s, mesh_of((n_dev,), ("data",)), negatives=negatives, masks=masks, chunk=chunk)
    check(got, reference(zs, s, negatives, masks))
    if masked:  # a missing vector gets no gradient
        for mask, g in zip(masks, got[1]):
            if mask is not None:
                assert not np.any(np.asarray(g)[~mask])


def test_several_batch_axes_and_bfloat16():
    """Batch over ("data", "fsdp") of a 2x2x2 mesh, bfloat16 inputs: compared with float64 on
    the same (rounded) values; gradients come back in bfloat16."""
    zs = [z.astype(jnp.bfloat16) for z in modalities(3, 8, seed=5)]
    mesh = mesh_of((2, 2, 2), ("data", "tensor", "fsdp"))
    val, gz, gs = run(zs, 4.0, mesh, ("data", "fsdp"), negatives="n_squared", chunk=3)
    ref_val, ref_gz, ref_gs = reference(zs, 4.0, "n_squared")
    assert_close(val, ref_val, 1e-5, "loss")
    assert all(g.dtype == jnp.bfloat16 for g in gz)
    for m, (g, r) in enumerate(zip(gz, ref_gz)):
        assert_close(g, r, 1e-2, f"z{m}")
    assert_close(gs, ref_gs, 1e-5, "scale")


def test_bad_arguments_are_named():
    mesh = mesh_of((8,), ("data",))
    z = jnp.zeros((8, 4))
    cases = [
        (dict(zs=[z, z]), "M >= 3"),
        (dict(zs=[z, z, jnp.zeros((8, 5))]), "same shape"),
        (dict(zs=[jnp.zeros((4, 4))] * 3), "not divisible by the 8 devices"),
        (dict(zs=[z] * 3, negatives="n_cubed"), "unknown negatives 'n_cubed'"),
        (dict(zs=[z] * 3, masks=[None, None]), "list of 3 entries"),
        (dict(zs=[z] * 3, masks=[None, None, jnp.ones(4, bool)]), r"masks\[2\]"),
        (dict(zs=[z] * 3, negatives="n_squared", chunk=0), "chunk"),
        (dict(zs=[z] * 3, batch_axes="model"), "batch_axes"),
    ]
    for kw, match in cases:
        with pytest.raises(ValueError, match=match):
            symile_loss(scale=1.0, mesh=mesh, **kw)


def test_n_squared_never_holds_a_full_block():
    """Per-device temporaries of n_squared's value-and-grad scale with the tile: tiles of 4 of
    B = 128 combinations need less than a quarter of one float32 [b, B, B] block, and a
    sixteenth of what a single tile of all combinations (the dense computation) needs."""
    batch, dim, n_dev = 128, 16, 8
    mesh = mesh_of((n_dev,), ("data",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    z = jax.ShapeDtypeStruct((batch, dim), jnp.float32)

    def temp_bytes(chunk):
        fn = lambda zs, s: symile_loss(zs, scale=s, mesh=mesh, negatives="n_squared", chunk=chunk)
        compiled = (
            jax.jit(jax.grad(fn, argnums=(0, 1)), in_shardings=([spec] * 3, None))
            .lower([z] * 3, jax.ShapeDtypeStruct((), jnp.float32))
            .compile()
        )
        return compiled.memory_analysis().temp_size_in_bytes

    full_block = 4 * (batch // n_dev) * batch * batch
    tiled, dense = temp_bytes(4), temp_bytes(batch)
    assert tiled < full_block / 4
    assert tiled < dense / 16
