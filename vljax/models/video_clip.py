"""Video-text two towers: the two-tower model's ViT embeds every frame (frames folded into the
batch), a temporal module pools the frame embeddings over time, and the result is the visual
embedding `img/emb` that the contrastive terms read; the text tower is unchanged.

`model.video.temporal`: `mean` (the mean of the frame embeddings: no parameters, so the
params are the two-tower model's and a 1-frame video embeds exactly as its image does) or
`transformer` (`model.video.depth` pre-LN blocks over the T frame embeddings with learned
temporal position embeddings initialised to zero, so at init only the blocks, not the frame
order, shape the result; then the mean). Both work in the projected space (`embed_dim`): the
ViT's head is linear, so projecting each frame and then averaging is projecting the average.
"""

import flax.linen as nn
import jax.numpy as jnp

from vljax.choices import VIDEO_TEMPORALS, expected
from vljax.errors import ConfigError
from vljax.models.layers import Encoder, compute_dtype, l2_normalize, layer_norm, partitioned
from vljax.models.two_tower import TwoTower


class TemporalTransformer(nn.Module):
    """[B, T, D] frame embeddings -> [B, D]: + temporal position (zero-initialised), blocks,
    final norm, mean over time."""

    frames: int  # the longest clip it takes (rows of the position table)
    depth: int
    heads: int
    mlp_dim: int
    activation: str = "gelu"
    ln_eps: float = 1e-5
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        t, d = x.shape[1], x.shape[2]
        if t > self.frames:
            raise ConfigError(
                f"a clip of {t} frames is longer than model.video.frames={self.frames}, the "
                "temporal position table; raise model.video.frames"
            )
        pe = self.param(
            "pos_embedding",
            partitioned(nn.initializers.zeros, (None, "length", "embed")),
            (1, self.frames, d),
            jnp.float32,
        )
        x = x + pe[:, :t].astype(x.dtype)
        x = Encoder(
            depth=self.depth,
            heads=self.heads,
            mlp_dim=self.mlp_dim,
            activation=self.activation,
            ln_eps=self.ln_eps,
            dtype=self.dtype,
            name="encoder",
        )(x)
        x = layer_norm(self.ln_eps, self.dtype, "encoder_norm")(x)
        return jnp.mean(x, axis=1)


class VideoTwoTower(TwoTower):
    """Batches carry `video` float [B, T, H, W, 3] (in [-1, 1]) and `tokens`."""

    def setup(self):
        super().setup()
        c = self.config
        v = c["video"]
        if v["temporal"] not in VIDEO_TEMPORALS:
            raise ConfigError(
                f"model.video.temporal={v['temporal']!r}: expected {expected(VIDEO_TEMPORALS)}"
            )
        if v["temporal"] == "transformer":
            if c["embed_dim"] % v["heads"]:
                raise ConfigError(
                    f"model.video.heads={v['heads']} does not divide model.embed_dim="
                    f"{c['embed_dim']} (the temporal transformer runs on the frame embeddings); "
                    "set heads to a divisor of it"
                )
            self.temporal = TemporalTransformer(
                frames=v["frames"],
                depth=v["depth"],
                heads=v["heads"],
                mlp_dim=v["mlp_dim"],
                activation=c["activation"],
                ln_eps=c["ln_eps"],
                dtype=compute_dtype(c["dtype"]),
            )

    def encode_videos(self, video, train: bool = False):
        """[B, T, H, W, 3] -> L2-normalised [B, D]."""
        b, t = video.shape[:2]
        frames = self.img(video.reshape(b * t, *video.shape[2:]), train=train)
        frames = frames.reshape(b, t, -1)
        if self.config["video"]["temporal"] == "transformer":
            return l2_normalize(self.temporal(frames))
        return l2_normalize(jnp.mean(frames, axis=1))

    def encode_images(self, images, train: bool = False):
        """Images as 1-frame videos: [N, H, W, 3] -> [N, D]."""
        return self.encode_videos(images[:, None], train=train)

    def __call__(self, batch, train: bool = False):
        return {
            "img/emb": self.encode_videos(batch["video"], train=train),
            "txt/emb": self.encode_texts(batch["tokens"]),
            "scale": jnp.exp(self.log_scale),
            "bias": self.bias,
        }
