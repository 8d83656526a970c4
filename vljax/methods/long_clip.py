"""Long-CLIP (Zhang et al. 2024, arXiv 2403.15378): CLIP fine-tuned to read long captions.

Knowledge-preserved stretching: the text position table of the CLIP it starts from keeps its
first `long_clip.keep_positions` rows (well trained: most captions are short) and is
linearly interpolated by `long_clip.stretch` over the rest, so the tower reads
keep + (L - keep) * stretch tokens. Primary component matching: the long caption is matched to
the image embedding (the term "contrastive"), the short caption to the image embedding
reduced to its leading principal components (the term "short_caption"). Exports like CLIP.
"""

import jax.numpy as jnp
import numpy as np

from vljax.errors import ConfigError
from vljax.methods import clip
from vljax.methods.method import Method, dot_similarity, model_builder
from vljax.models.long_clip import LongClip

build_model = model_builder(LongClip)


def example_batch(model_config, n: int = 1) -> dict:
    batch = clip.example_batch(model_config, n)
    return {**batch, "short_tokens": batch["tokens"]}


def stretch_positions(table, keep: int, stretch: int) -> np.ndarray:
    """[1, L, W] -> [1, keep + (L - keep) * stretch, W]: rows < keep copied; new row
    keep + j sits at old position keep + j / stretch, linearly interpolated between its two
    neighbours (past the last old row, extrapolated along the last two rows' difference)."""
    table = np.asarray(table, np.float32)
    length = table.shape[1]
    if not 1 <= keep < length - 1:
        raise ConfigError(
            f"long_clip.keep_positions={keep} must leave at least 2 of the {length} loaded text "
            "positions to stretch"
        )
    where = keep + np.arange((length - keep) * stretch) / stretch  # old fractional positions
    low = np.minimum(np.floor(where).astype(int), length - 2)
    frac = (where - low)[None, :, None]
    stretched = table[:, low] * (1 - frac) + table[:, low + 1] * frac
    return np.concatenate([table[:, :keep], stretched], axis=1).astype(np.float32)


def stretch_loaded_positions(params, config):
    """init_from params -> this run's: the text position table stretched to max_len."""
    table = params["txt"]["pos_embedding"]
    loaded, want = table.shape[1], int(config.model.text.max_len)
    if loaded == want:  # already a Long-CLIP run's table
        return params
    keep, stretch = int(config.long_clip.keep_positions), int(config.long_clip.stretch)
    if keep + (loaded - keep) * stretch != want:
        raise ConfigError(
            f"init_from has {loaded} text positions; stretching keeps {keep} and multiplies the "
            f"rest by {stretch}, giving {keep + (loaded - keep) * stretch}, but "
            f"model.text.max_len={want}: set model.text.max_len="
            f"{keep + (loaded - keep) * stretch}"
        )
    txt = {**params["txt"], "pos_embedding": jnp.asarray(stretch_positions(table, keep, stretch))}
    return {**params, "txt": txt}


METHOD = Method(
    name="long_clip",
    build_model=build_model,
    example_batch=example_batch,
    batch_fields=("image", "tokens", "short_tokens"),
    default_terms={"contrastive": 1.0, "short_caption": 1.0},
    similarity=dot_similarity,
    same_modality_similarity=dot_similarity,
    adapt_init_params=stretch_loaded_positions,
    rng_purposes=("mask",),
    export_formats=("hf", "open_clip"),
)
