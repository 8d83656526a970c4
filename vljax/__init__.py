"""vljax: contrastive vision-language pre-training in JAX/Flax."""

__version__ = "0.1.0"


def load(path):
    """Loads a run directory or an exported Hugging Face folder as an encoder."""
    from vljax.inference import load as _load

    return _load(path)
