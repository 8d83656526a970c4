"""Long-CLIP's mechanisms against independent references: the stretched position table (the
paper's row-by-row construction), primary component matching (numpy SVD PCA), the stretch
arithmetic check, and the long/short caption data."""

import jax
import ml_collections
import numpy as np
import pytest

from vljax.data.shapes_long import ShapesLongSource, long_caption, short_caption
from vljax.errors import ConfigError
from vljax.losses.primary_components import primary_components
from vljax.methods.long_clip import stretch_loaded_positions, stretch_positions


def paper_stretch(pe, keep=20):
    """Long-CLIP's published construction for a stretch of 4, row by row: each old gap is
    split into quarters; the last old row is extended along the last difference."""
    length, dim = pe.shape
    new = np.zeros((4 * length - 3 * keep, dim))
    new[:keep] = pe[:keep]
    for i in range(length - 1 - keep):
        a, b = pe[i + keep], pe[i + 1 + keep]
        new[4 * i + keep] = a
        new[4 * i + 1 + keep] = 3 * a / 4 + b / 4
        new[4 * i + 2 + keep] = 2 * a / 4 + 2 * b / 4
        new[4 * i + 3 + keep] = a / 4 + 3 * b / 4
    step = pe[length - 1] - pe[length - 2]
    for j in range(4):
        new[4 * length - 3 * keep - 4 + j] = pe[length - 1] + j * step / 4
    return new


@pytest.mark.parametrize("length,keep", [(77, 20), (24, 20)])
def test_stretch_matches_the_papers_construction(length, keep):
    pe = np.random.default_rng(0).normal(size=(length, 8)).astype(np.float32)
    got = stretch_positions(pe[None], keep, 4)[0]
    assert got.shape == (keep + (length - keep) * 4, 8)
    np.testing.assert_array_equal(got[:keep], pe[:keep])  # the first rows, bit for bit
    np.testing.assert_allclose(got, paper_stretch(pe.astype(np.float64), keep), atol=1e-6)


def test_loaded_table_is_stretched_to_max_len_or_refused():
    config = ml_collections.ConfigDict(
        dict(model=dict(text=dict(max_len=36)), long_clip=dict(keep_positions=20, stretch=4))
    )
    pe = np.arange(24 * 2, dtype=np.float32).reshape(1, 24, 2)
    params = {"txt": {"pos_embedding": pe, "other": 1}, "img": {}}
    out = stretch_loaded_positions(params, config)
    assert out["txt"]["pos_embedding"].shape == (1, 36, 2) and out["txt"]["other"] == 1
    config.model.text.max_len = 40
    with pytest.raises(ConfigError, match="model.text.max_len=36"):
        stretch_loaded_positions(params, config)


def test_primary_components_match_numpy_pca():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 6)) @ np.diag([5, 4, 3, 0.5, 0.2, 0.1])
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    want = mean + (x - mean) @ vt[:3].T @ vt[:3]
    got = jax.jit(primary_components, static_argnums=1)(x.astype(np.float32), 3)
    np.testing.assert_allclose(got, want, atol=1e-4)
    full = primary_components(x.astype(np.float32), 6)  # every component: x itself
    np.testing.assert_allclose(full, x, atol=1e-4)
    grads = jax.grad(lambda v: primary_components(v, 3).sum())(x.astype(np.float32))
    assert np.all(np.isfinite(grads))  # a rank-deficient batch has no NaN gradient


def test_long_and_short_captions_describe_the_same_grid():
    source = ShapesLongSource("train", size=4, seed=0, image_size=64)
    example = source[1]
    objs = source.scene(1)
    assert example["captions"]["en"] == long_caption(objs)
    assert example["short_captions"]["en"] == short_caption(objs)
    assert example["captions"]["en"].startswith("top left a ")
    assert " and bottom right a " in example["captions"]["en"]
    retrieval = ShapesLongSource("retrieval", size=300, seed=0)
    captions = [retrieval.captions(i)["en"] for i in range(300)]
    assert len(set(captions)) == 300
