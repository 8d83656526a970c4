"""Long-CLIP's primary component extraction (arXiv 2403.15378): the batch's image features
reconstructed from their top-k principal components, the "coarse" image feature that a
short caption is matched to."""

import jax.numpy as jnp
from jax import lax


def primary_components(x, k: int):
    """x [B, D] -> [B, D]: mean + projection of the centred rows onto the k leading
    eigenvectors of their [D, D] scatter matrix (PCA over the global batch).

    The eigenvectors are treated as constants of the step (no gradient through the
    eigendecomposition, whose derivative is unbounded for repeated eigenvalues, as the
    zero eigenvalues of a rank-deficient batch are); the reconstruction stays linear in x.
    """
    x = x.astype(jnp.float32)
    if not 1 <= k <= x.shape[1]:
        raise ValueError(f"primary components k={k} must be in [1, {x.shape[1]}]")
    mean = jnp.mean(x, axis=0, keepdims=True)
    centred = x - mean
    _, vectors = jnp.linalg.eigh(lax.stop_gradient(centred.T @ centred))  # ascending
    top = vectors[:, -k:]
    return mean + (centred @ top) @ top.T
