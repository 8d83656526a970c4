"""Two towers (CLIP / SigLIP): an image and a text encoder meeting in one embedding space."""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vljax.errors import ConfigError
from vljax.models.layers import encoder_options, l2_normalize, partitioned
from vljax.models.text import TextTransformer
from vljax.models.vit import image_tower


class TwoTower(nn.Module):
    """`config` is `config.model` (see configs/common.py); modules are picked by name."""

    config: dict

    def setup(self):
        c = self.config
        common = encoder_options(c)
        i, t = c["image"], c["text"]
        img_proj = i["proj"]
        if img_proj == "none" and i["width"] != c["embed_dim"]:
            raise ConfigError(
                f"model.image.proj='none' uses the pooled output as the embedding, so "
                f"model.embed_dim ({c['embed_dim']}) must equal model.image.width ({i['width']}); "
                "set image.proj='linear' or make them equal"
            )
        self.img = image_tower(
            c, proj=img_proj, proj_dim=c["embed_dim"], in_channels=self.image_channels()
        )
        self.txt = TextTransformer(
            vocab_size=t["vocab_size"],
            max_len=t["max_len"],
            width=t["width"],
            depth=t["depth"],
            heads=t["heads"],
            mlp_dim=t["mlp_dim"],
            causal=t.get("causal", True),
            pool=t.get("pool", "eos"),
            proj=t.get("proj", "linear"),
            proj_dim=c["embed_dim"],
            eos_id=t.get("eos_id", 1),
            pad_id=t.get("pad_id", 0),
            **common,
        )
        # The temperature is learned in log space so it stays positive.
        self.log_scale = self.param(
            "log_scale",
            partitioned(nn.initializers.constant(np.log(c["scale_init"])), ()),
            (),
            jnp.float32,
        )
        if c.get("bias_init") is not None:
            self.bias = self.param(
                "bias", partitioned(nn.initializers.constant(c["bias_init"]), ()), (), jnp.float32
            )
        else:
            self.bias = None

    def image_channels(self) -> int:
        """Channels of what the image tower reads: RGB."""
        return 3

    def encode_images(self, images, train: bool = False):
        return l2_normalize(self.img(images, train=train))

    def encode_texts(self, tokens, token_gates=None):
        return l2_normalize(self.txt(tokens, token_gates=token_gates))

    def __call__(self, batch, train: bool = False):
        return {
            "img/emb": self.encode_images(batch["image"], train=train),
            "txt/emb": self.encode_texts(batch["tokens"]),
            "scale": jnp.exp(self.log_scale),
            "bias": self.bias,
        }
