"""Symile's three towers (arXiv 2411.01053): the two-tower model's image and text towers plus
a third tower, a small text transformer over the third modality's tokens (`model.third`:
its own vocabulary, width, depth, heads, MLP and length; causal, pooled at EOS, projected to
`model.embed_dim` like the text tower). Outputs the L2-normalised `img/emb`, `txt/emb`,
`third/emb`, and `scale` (one learned logit scale for every term)."""

from vljax.errors import ConfigError
from vljax.models.layers import encoder_options, l2_normalize
from vljax.models.text import TextTransformer
from vljax.models.two_tower import TwoTower


class SymileTowers(TwoTower):
    def setup(self):
        super().setup()
        c = self.config
        third = c["third"]
        if third["width"] % third["heads"]:
            raise ConfigError(
                f"model.third.width={third['width']} is not divisible by model.third.heads="
                f"{third['heads']}; set heads to a divisor of the width"
            )
        self.third = TextTransformer(
            vocab_size=third["vocab_size"],
            max_len=third["max_len"],
            width=third["width"],
            depth=third["depth"],
            heads=third["heads"],
            mlp_dim=third["mlp_dim"],
            proj_dim=c["embed_dim"],
            **encoder_options(c),
        )

    def encode_third(self, tokens):
        return l2_normalize(self.third(tokens))

    def __call__(self, batch, train: bool = False):
        out = super().__call__(batch, train=train)
        out["third/emb"] = self.encode_third(batch["third_tokens"])
        return out
