"""Two towers that embed several captions per image (batch field `multi_tokens` [B, K, L]):
the positives of one row of the 1-to-K loss, or M2-Encoder's captions in each language.

The parameters are TwoTower's (CLIP's), so encode_images / encode_texts, the evals and the
Hugging Face export are CLIP's; only the training forward differs.
"""

import jax.numpy as jnp

from vljax.models.two_tower import TwoTower
from vljax.token_ids import PAD_ID


class MultiCaption(TwoTower):
    def __call__(self, batch, train: bool = False):
        """-> CLIP's outputs, with `txt/multi_emb` [B, K, D] (caption k of example b),
        `txt/multi_valid` bool [B, K] (the caption holds a non-PAD token; an absent one is an
        all-PAD row and its embedding is meaningless) and `txt/emb` = the first caption's."""
        tokens = batch["multi_tokens"]
        if tokens.ndim != 3:
            raise ValueError(f"multi_tokens must be [B, K, L], got shape {tokens.shape}")
        n, k, length = tokens.shape
        # [B * K, L] keeps the batch-major order, so each device's rows stay its own: the text
        # tower's activations are batch-sharded like any other batch.
        emb = self.encode_texts(tokens.reshape(n * k, length)).reshape(n, k, -1)
        return {
            "img/emb": self.encode_images(batch["image"], train=train),
            "txt/emb": emb[:, 0],
            "txt/multi_emb": emb,
            "txt/multi_valid": jnp.any(tokens != PAD_ID, axis=-1),
            "scale": jnp.exp(self.log_scale),
            "bias": self.bias,
        }
