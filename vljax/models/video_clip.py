"""Video-text two towers: the two-tower model's ViT embeds every frame (frames folded into the
batch), a temporal module pools the frame embeddings over time, and the result is the visual
embedding `img/emb` that the contrastive terms read; the text tower is unchanged.

`model.video.temporal`: `mean` (the mean of the frame embeddings: no parameters, so the
params are the two-tower model's and a 1-frame video embeds exactly as its image does) or
`transformer` (`model.video.depth` pre-LN blocks over the T frame embeddings with learned
temporal position embeddings, initialised as a ViT's learned positions are, normal with
standard deviation 1 / sqrt(D): each frame's place counts from the first step; then the
mean). Both work in the projected space (`embed_dim`): the
ViT's head is linear, so projecting each frame and then averaging is projecting the average.

`space_time`: Frozen in Time's divided space-time attention (arXiv 2104.00650) inside the ViT
(`image_tower`, `EncoderBlock.frames`): each block attends over time at each patch position,
then over space within the frame; the temporal position embeddings and the temporal
attention's output projection start at zero, so image weights compute the image ViT per frame
at init. Then the mean of the frames' pooled, projected embeddings.

`xpool`: X-Pool (arXiv 2203.15086), text-conditioned pooling: a clip's embedding depends on
the text it is compared with. `encode_videos` gives the projected frame embeddings
[B, T, D]; `score_pairs` pools them per text (`XPool`) and gives the cosine of every
text-clip pair. Trained by method xpool (term pair_contrastive) and scored by it in evals.

`early`: early fusion (Karpathy et al., CVPR 2014; ViViT's tubelet embedding with the whole
clip as its temporal extent, arXiv 2103.15691): a clip's T frames are stacked on the channel
axis, [H, W, 3T] in frame order (`fuse_frames`), and the ViT embeds the clip in one pass, its
first layer (the stem) reading every frame's pixels at each place; so a clip costs about one
image's FLOPs instead of T. The frame embeddings are one row [B, 1, D]. The stem's kernel has
3T input channels, so image weights do not load into it.

Real frames: batch field `video_frames` (int32 [B]) counts the real frames at the start of
each clip; the rest are padding. A mixture's image is a clip of T copies of itself with one
real frame (vljax/data/pipeline.py), so under every temporal module it embeds exactly as the
1-frame video: the temporal attention (transformer, space_time) and X-Pool attend to real
frames only, and the mean runs over real frames. Without the field every frame is real.
"""

import math

import einops
import flax.linen as nn
import jax.numpy as jnp

from vljax.choices import VIDEO_TEMPORALS, expected
from vljax.errors import ConfigError
from vljax.models.layers import (
    Attention,
    Encoder,
    compute_dtype,
    l2_normalize,
    layer_norm,
    partitioned,
)
from vljax.models.two_tower import TwoTower


def frame_validity(counts, frames: int):
    """int32 [B] real-frame counts (None: every frame real) -> bool [B, frames] or None."""
    if counts is None:
        return None
    return jnp.arange(frames)[None, :] < counts[:, None]


def fuse_frames(video, frames: int, counts=None):
    """Early fusion's input: [B, t, H, W, C] -> [B, H, W, frames * C], frame k's channels at
    k * C. Each clip's frames after its real ones (`counts`, None = all t) repeat its last
    real frame, so an image (t = 1) is its still clip and padding never reaches the model."""
    b, t = video.shape[:2]
    lengths = jnp.full((b, 1), t) if counts is None else counts[:, None]
    last = jnp.clip(lengths, 1, t) - 1  # each clip's last real frame
    index = jnp.minimum(jnp.arange(frames)[None, :], last).reshape(b, frames, 1, 1, 1)
    clip = jnp.take_along_axis(video, index, axis=1)  # [B, frames, H, W, C]
    return einops.rearrange(clip, "b t h w c -> b h w (t c)")


def mean_over_frames(x, valid):
    """[B, T, D] -> [B, D]: the mean over the frames that `valid` (bool [B, T] or None = all)
    marks, in float32."""
    if valid is None:
        return jnp.mean(x, axis=1)
    w = valid.astype(jnp.float32)[..., None]
    total = jnp.sum(x.astype(jnp.float32) * w, axis=1)
    return (total / jnp.maximum(jnp.sum(w, axis=1), 1.0)).astype(x.dtype)


def reverse_frames(frames, counts=None):
    """[B, T, ...] -> each clip's real frames in reverse order (the first `counts[i]`; padding
    frames stay where they are): the clip played backwards, the `time_order` term's negative."""
    b, t = frames.shape[:2]
    lengths = jnp.full((b, 1), t) if counts is None else counts[:, None]
    steps = jnp.arange(t)[None, :]
    index = jnp.where(steps < lengths, lengths - 1 - steps, steps)
    index = index.reshape(index.shape + (1,) * (frames.ndim - 2))
    return jnp.take_along_axis(frames, index, axis=1)


class TemporalTransformer(nn.Module):
    """[B, T, D] frame embeddings -> [B, D]: + temporal position, blocks, final norm, mean
    over time. The positions start random (normal, standard deviation 1 / sqrt(D), as
    big_vision's learned ViT positions), not at zero, where the blocks and the mean are blind
    to frame order. On moving_shapes that alone did not beat mean pooling; the `time_order`
    term (clips played backwards as negatives) did (docs/methods.md)."""

    frames: int  # the longest clip it takes (rows of the position table)
    depth: int
    heads: int
    mlp_dim: int
    activation: str = "gelu"
    ln_eps: float = 1e-5
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, valid=None):
        """`valid` (bool [B, T] or None = all): the real frames, the only ones attended to
        and averaged."""
        t, d = x.shape[1], x.shape[2]
        if t > self.frames:
            raise ConfigError(
                f"a clip of {t} frames is longer than model.video.frames={self.frames}, the "
                "temporal position table; raise model.video.frames"
            )
        pe = self.param(
            "pos_embedding",
            partitioned(nn.initializers.normal(d**-0.5), (None, "length", "embed")),
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
        )(x, None if valid is None else valid[:, None, None, :])
        x = layer_norm(self.ln_eps, self.dtype, "encoder_norm")(x)
        return mean_over_frames(x, valid)


def identity_init(key, shape, dtype=jnp.float32):
    """The identity map as a kernel of any layout whose input and output features are equal
    ([D, heads, head_dim], [heads, head_dim, D], [D, D]): X-Pool's authors' init."""
    d = math.isqrt(math.prod(shape))
    return jnp.eye(d, dtype=dtype).reshape(shape)


class XPool(nn.Module):
    """X-Pool's cross-modal attention, as the authors' code (github.com/layer6ai-labs/xpool,
    modules/transformer.py): text [M, D] as the query, a clip's frames [N, T, D] as keys and
    values, all after one shared LayerNorm; softmax(q k^T / sqrt(d)) v and the output
    projection (`Attention`), LayerNorm, a linear layer added back, LayerNorm -> the clip
    pooled for each text [N, M, D]. Every projection starts as the identity, as theirs. With
    one frame the attention weight is 1: the result is the same for every text, a fixed
    function of the frame."""

    heads: int = 1  # the paper's one head
    ln_eps: float = 1e-5
    dtype: jnp.dtype = jnp.float32
    attention: str = "xla"

    @nn.compact
    def __call__(self, texts, frames, valid=None):
        """`valid` (bool [N, T] or None = all): the real frames, the only ones attended to."""
        norm = layer_norm(self.ln_eps, self.dtype, "ln_1")
        n, d = frames.shape[0], frames.shape[-1]
        queries = jnp.broadcast_to(norm(texts)[None], (n, *texts.shape))  # [N, M, D]
        attn = Attention(
            self.heads, self.dtype, self.attention, kernel_init=identity_init, name="attn"
        )
        x = attn(queries, norm(frames), None if valid is None else valid[:, None, None, :])
        x = layer_norm(self.ln_eps, self.dtype, "ln_2")(x)
        linear = nn.Dense(
            d,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=partitioned(identity_init, ("embed", "mlp")),
            bias_init=partitioned(nn.initializers.zeros, ("mlp",)),
            name="linear",
        )
        return layer_norm(self.ln_eps, self.dtype, "ln_3")(x + linear(x))


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
        if v["temporal"] == "xpool":
            self.temporal = XPool(
                heads=v["heads"],
                ln_eps=c["ln_eps"],
                dtype=compute_dtype(c["dtype"]),
                attention=c.get("attention", "xla"),
            )

    def image_channels(self) -> int:
        """RGB, or under early fusion a clip's frames stacked on the channel axis."""
        v = self.config["video"]
        return 3 * v["frames"] if v["temporal"] == "early" else 3

    def encode_frames(self, video, train: bool = False, counts=None):
        """[B, T, H, W, 3] -> the projected frame embeddings [B, T, D] (under `space_time`
        the ViT attends across each clip's real frames; under `early` one embedding of the
        fused clip, [B, 1, D]; `counts`: batch field `video_frames`, None = every frame
        real)."""
        b, t = video.shape[:2]
        if self.config["video"]["temporal"] == "early":
            fused = fuse_frames(video, self.config["video"]["frames"], counts)
            return self.img(fused, train=train)[:, None]
        valid = frame_validity(counts, t)
        frames = self.img(
            video.reshape(b * t, *video.shape[2:]), train=train, frames=t, frame_valid=valid
        )
        return frames.reshape(b, t, -1)

    def pool_frames(self, frames, counts=None):
        """Frame embeddings [B, T, D] -> L2-normalised [B, D] over each clip's real frames
        (mean, transformer or space_time's mean)."""
        valid = frame_validity(counts, frames.shape[1])
        if self.config["video"]["temporal"] == "transformer":
            return l2_normalize(self.temporal(frames, valid))
        return l2_normalize(mean_over_frames(frames, valid))

    def order_outputs(self, frames, counts=None) -> dict:
        """`img/emb_reversed`: each clip's embedding played backwards (`reverse_frames`), for
        the `time_order` term; only where the temporal module sees the frame embeddings'
        order (`transformer`): under mean pooling the reversed clip embeds the same (and
        space_time's order is inside the ViT, before these embeddings)."""
        if self.config["video"]["temporal"] != "transformer":
            return {}
        return {"img/emb_reversed": self.pool_frames(reverse_frames(frames, counts), counts)}

    def encode_videos(self, video, train: bool = False, counts=None):
        """[B, T, H, W, 3] -> L2-normalised [B, D]; under `xpool` the frame embeddings
        [B, T, D], pooled per text by `score_pairs`."""
        frames = self.encode_frames(video, train=train, counts=counts)
        if self.config["video"]["temporal"] == "xpool":
            return frames
        return self.pool_frames(frames, counts)

    def pool_per_text(self, frames, texts, counts=None):
        """X-Pool: frames [N, T, D], L2-normalised texts [M, D] -> [N, M, D]."""
        if self.config["video"]["temporal"] != "xpool":
            raise ConfigError(
                f"model.video.temporal={self.config['video']['temporal']!r} pools clips "
                "without the text; text-conditioned pooling needs temporal='xpool'"
            )
        return self.temporal(texts, frames, frame_validity(counts, frames.shape[1]))

    def score_pairs(self, frames, texts, counts=None):
        """X-Pool's similarity: frames [N, T, D], L2-normalised texts [M, D] -> the cosine
        of each text with the clip pooled for it over its real frames, float32 [N, M]."""
        pooled = l2_normalize(self.pool_per_text(frames, texts, counts))
        return jnp.einsum("nmd,md->nm", pooled, texts.astype(jnp.float32))

    def encode_images(self, images, train: bool = False):
        """Images as 1-frame videos: [N, H, W, 3] -> [N, D]."""
        return self.encode_videos(images[:, None], train=train)

    def __call__(self, batch, train: bool = False):
        counts = batch.get("video_frames")
        if self.config["video"]["temporal"] == "xpool":
            # The loss pools every clip for every caption (`score_pairs`), tile by tile.
            frames = self.encode_frames(batch["video"], train=train, counts=counts)
            texts = self.encode_texts(batch["tokens"])
            if self.is_initializing():  # creates the pooling params the loss will use
                self.score_pairs(frames, texts, counts)
            return {
                "img/frames": frames,
                "txt/emb": texts,
                "scale": jnp.exp(self.log_scale),
                "bias": self.bias,
            }
        frames = self.encode_frames(batch["video"], train=train, counts=counts)
        return {
            "img/emb": self.pool_frames(frames, counts),
            **self.order_outputs(frames, counts),
            "txt/emb": self.encode_texts(batch["tokens"]),
            "scale": jnp.exp(self.log_scale),
            "bias": self.bias,
        }
