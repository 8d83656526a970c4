"""FILIP's two towers (arXiv 2111.07783): the CLIP towers, scored token by token.

The same parameters as `TwoTower`; the outputs add every token, projected into the shared
space by each tower's own head and L2-normalised: `img/tokens` [N, Np, D] (patch tokens),
`txt/tokens` [N, Nt, D] and `txt/mask` [N, Nt] (True at real tokens). The pooled
embeddings stay, so a run may weight a pooled contrastive term beside the late interaction.
"""

import jax.numpy as jnp

from vljax.models.layers import l2_normalize
from vljax.models.two_tower import TwoTower


class LateInteraction(TwoTower):
    def image_tokens(self, images, train: bool = False):
        pooled, tokens = self.img(images, train=train, return_tokens=True)
        return l2_normalize(pooled), l2_normalize(tokens)

    def text_tokens(self, tokens):
        pooled, sequence = self.txt(tokens, return_tokens=True)
        pad = self.txt.pad_id  # None: a tower trained without a padding mask
        mask = jnp.ones(tokens.shape, bool) if pad is None else tokens != pad
        return l2_normalize(pooled), l2_normalize(sequence), mask

    def encode_images(self, images, train: bool = False):
        """-> {"tokens": [N, Np, D]}: what the late-interaction similarity compares."""
        return {"tokens": self.image_tokens(images, train=train)[1]}

    def encode_texts(self, tokens):
        """-> {"tokens": [N, Nt, D], "mask": [N, Nt]}."""
        _, sequence, mask = self.text_tokens(tokens)
        return {"tokens": sequence, "mask": mask}

    def __call__(self, batch, train: bool = False):
        img_emb, img_tokens = self.image_tokens(batch["image"], train=train)
        txt_emb, txt_tokens, txt_mask = self.text_tokens(batch["tokens"])
        return {
            "img/emb": img_emb,
            "img/tokens": img_tokens,
            "txt/emb": txt_emb,
            "txt/tokens": txt_tokens,
            "txt/mask": txt_mask,
            "scale": jnp.exp(self.log_scale),
            "bias": self.bias,
        }
