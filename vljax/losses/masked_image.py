"""SyCoCa's text-guided masked image modeling loss (vljax/models/sycoca.py)."""

import jax.numpy as jnp


def masked_image_term(outputs, batch, ctx):
    """Mean squared error of `mim/pred` against `mim/target` ([B, M, P]: the M masked patches'
    pixels, raw normalised values in [-1, 1], no per-patch normalisation), averaged over the
    pixels of every masked patch of the global batch (each image masks the same M)."""
    pred = outputs["mim/pred"].astype(jnp.float32)
    target = outputs["mim/target"].astype(jnp.float32)
    return jnp.mean(jnp.square(pred - target)), {}
