"""Vision Transformer image tower (ViT, as in CLIP / SigLIP / big_vision)."""

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vljax.choices import IMAGE_POOLS, IMAGE_PROJS, IMAGE_STEMS, POSEMBS, expected
from vljax.errors import ConfigError
from vljax.models.conv import Conv3x3, max_pool_2x2
from vljax.models.layers import (
    Attention,
    Dtype,
    Encoder,
    MlpBlock,
    constrain,
    encoder_options,
    layer_norm,
    partitioned,
)


def posemb_sincos_2d(h: int, w: int, width: int, temperature: float = 10_000.0) -> np.ndarray:
    """Fixed 2D sin-cos position embedding `[h * w, width]` (MoCo v3 / big_vision)."""
    if width % 4:
        raise ConfigError(f"image.width={width} must be divisible by 4 for posemb=sincos2d")
    y, x = np.mgrid[:h, :w]
    omega = np.arange(width // 4) / (width // 4 - 1)
    omega = 1.0 / (temperature**omega)
    y = np.einsum("m,d->md", y.flatten(), omega)
    x = np.einsum("m,d->md", x.flatten(), omega)
    pe = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
    return pe.astype(np.float32)


class MAPHead(nn.Module):
    """Multihead attention pooling (SigLIP): a learned probe attends over all tokens."""

    heads: int
    mlp_dim: int
    activation: str = "gelu"
    ln_eps: float = 1e-5
    dtype: Dtype = jnp.float32
    attention: str = "xla"

    @nn.compact
    def __call__(self, x):
        n, _, d = x.shape
        probe = self.param(
            "probe",
            partitioned(nn.initializers.xavier_uniform(), (None, None, "embed")),
            (1, 1, d),
            jnp.float32,
        )
        probe = jnp.tile(probe, [n, 1, 1]).astype(self.dtype)
        x = Attention(self.heads, self.dtype, self.attention, name="attn")(probe, x)
        y = layer_norm(self.ln_eps, self.dtype, "ln")(x)
        x = x + MlpBlock(self.mlp_dim, self.activation, self.dtype, name="mlp")(y)
        return x[:, 0]


class PatchEmbedding(nn.Module):
    """A p x p convolution at stride p with VALID padding (ViT's patchify), written as the
    image's patches times one matmul: the same function and the same params as nn.Conv
    (`kernel` [p, p, C, width], `bias` [width], initialised alike), one GEMM. cuDNN ran the
    convolution as an sm80 kernel taking 4.7 ms of a 181 ms ViT-B/16 step on an H200 (about
    0.12 TFLOP of work; docs/benchmarks.md)."""

    width: int
    patch_size: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        """[N, H, W, C] -> [N, H // p, W // p, width]; rows and columns past the last whole
        patch are dropped, as VALID padding does."""
        p, (_, h, w, c) = self.patch_size, x.shape
        kernel = self.param(
            "kernel",
            partitioned(nn.initializers.lecun_normal(), (None, None, "patch", "embed")),
            (p, p, c, self.width),
            jnp.float32,
        )
        bias = self.param(
            "bias", partitioned(nn.initializers.zeros, ("embed",)), (self.width,), jnp.float32
        )
        x = x[:, : h // p * p, : w // p * p]
        patches = einops.rearrange(x, "n (h p) (w q) c -> n h w (p q c)", p=p, q=p)
        weights = kernel.reshape(p * p * c, self.width).astype(self.dtype)
        return patches.astype(self.dtype) @ weights + bias.astype(self.dtype)


def drop_patches(x, ratio: float, key, keep_first: bool = False):
    """FLIP's patch dropout (arXiv 2212.00794): keeps a random round((1 - ratio) * n) of the
    n patch tokens of each image (and the cls token when `keep_first`), in their order. The
    encoder then costs about (1 - ratio) of its unmasked FLOPs."""
    first, patches = (x[:, :1], x[:, 1:]) if keep_first else (None, x)
    n = patches.shape[1]
    keep = max(1, round((1 - ratio) * n))
    noise = jax.random.uniform(key, patches.shape[:2])
    index = jnp.sort(jnp.argsort(noise, axis=1)[:, :keep], axis=1)
    kept = jnp.take_along_axis(patches, index[:, :, None], axis=1)
    return kept if first is None else jnp.concatenate([first, kept], axis=1)


class VisionTransformer(nn.Module):
    """Patches -> (+cls) -> +posemb -> (pre-LN) -> encoder -> LN -> pool -> (projection).

    The cls token is prepended *before* the position embedding is added (learned posemb then
    has num_patches + 1 rows), matching OpenAI CLIP / HF CLIPVisionEmbeddings so that export
    and import are copies. `pre_norm` is HF CLIP's `pre_layrnorm`.
    """

    image_size: int
    patch_size: int
    width: int
    depth: int
    heads: int
    mlp_dim: int
    pool: str = "cls"  # cls | gap | map
    posemb: str = "learn"  # learn | sincos2d
    pre_norm: bool = False
    # patch (one p x p conv, as ViT/CLIP) | conv (3x3 stride-2 convs) | conv_pool (3x3 convs
    # at stride 1, each followed by 2x2 max pooling)
    stem: str = "patch"
    stem_width: int = 16  # channels of the first stem conv; each next one doubles, up to width
    proj: str = "linear"  # linear (no bias) | none
    proj_dim: int | None = None
    mask_ratio: float = 0.0  # FLIP: fraction of patches dropped in training, never at eval
    activation: str = "gelu"
    ln_eps: float = 1e-5
    dtype: Dtype = jnp.float32
    attention: str = "xla"  # model.attention
    remat: bool = False
    remat_policy: str = "full"  # model.remat_policy
    scan: bool = False
    # > 0: divided space-time attention (Frozen in Time) over clips of up to this many frames
    # (the rows of the temporal position table, zero at init); 0: the image ViT. Frames are
    # rows of `images`, `frames` consecutive ones a clip (`__call__`).
    temporal_frames: int = 0
    # Channels of the input: 3 (RGB), or 3 x frames for a clip fused early (its frames
    # stacked on the channel axis, `model.video.temporal = "early"`).
    in_channels: int = 3

    def _conv_stem(self, x):
        """3x3 convolutions down to patch resolution, halving it log2(patch_size) times.

        `conv`: stride-2 convolutions (Xiao et al. 2021, "Early convolutions help
        transformers see better"). `conv_pool`: stride-1 convolutions, each followed by 2x2
        max pooling (VGG-style); on the demo's shapes a supervised probe learns the shape of a
        12 px object faster with it (accuracy 0.42 vs 0.28 after 150 steps, docs/data.md), for
        about 3x the strided stem's FLOPs. Both train shape far faster than one linear
        patchify, which is what a tiny CPU demo needs.
        """
        steps = int(np.log2(self.patch_size))
        if 2**steps != self.patch_size:
            raise ConfigError(
                f"image.stem={self.stem!r} needs a power-of-two patch_size, got {self.patch_size}"
            )
        pool = self.stem == "conv_pool"
        for i in range(steps):
            features = min(self.stem_width * 2**i, self.width)
            if pool:  # the same function as nn.Conv + nn.max_pool, run as matmuls (conv.py)
                x = Conv3x3(features, dtype=self.dtype, name=f"stem_{i}")(x)
                x = max_pool_2x2(nn.gelu(x))
                continue
            x = nn.Conv(
                features,
                (3, 3),
                strides=(2, 2),
                padding="SAME",
                dtype=self.dtype,
                param_dtype=jnp.float32,
                kernel_init=partitioned(nn.initializers.lecun_normal(), (None, None, None, None)),
                bias_init=partitioned(nn.initializers.zeros, (None,)),
                name=f"stem_{i}",
            )(x)
            x = nn.gelu(x)
        return x

    def _add_temporal_posemb(self, x, frames: int, train: bool):
        """+ the temporal position embedding of each row's frame (zero at init, so image
        weights compute the image ViT per frame)."""
        n, length, width = x.shape
        if frames > self.temporal_frames or n % frames:
            raise ConfigError(
                f"{n} frames in clips of {frames}: a clip is longer than model.video.frames="
                f"{self.temporal_frames} (the temporal position table) or the rows do not "
                "divide into clips; raise model.video.frames or pass whole clips"
            )
        if train and self.mask_ratio > 0:
            raise ConfigError(
                f"model.image.mask_ratio={self.mask_ratio} drops different patches in each "
                "frame, but divided space-time attention attends across frames at each patch "
                "position; set mask_ratio=0 with model.video.temporal='space_time'"
            )
        pe = self.param(
            "time_embedding",
            partitioned(nn.initializers.zeros, (None, None, None, "embed")),
            (1, self.temporal_frames, 1, width),
            jnp.float32,
        )
        x = x.reshape(n // frames, frames, length, width) + pe[:, :frames].astype(x.dtype)
        return x.reshape(n, length, width)

    @nn.compact
    def __call__(
        self, images, train: bool = False, return_tokens: bool = False, frames: int = 1,
        frame_valid=None,
    ):  # fmt: skip
        """float images [N, H, W, 3] -> the pooled, projected embedding [N, proj_dim]; with
        `return_tokens`, also the patch tokens after the final norm and the same projection
        ([N, T, proj_dim]; no cls token; T is the kept patches under FLIP's dropout).
        With `temporal_frames`, each `frames` consecutive rows are one clip's frames, of which
        `frame_valid` (bool [clips, frames], default all) marks the real ones for the temporal
        attention; the outputs stay per frame."""
        if images.ndim != 4 or images.shape[-1] != self.in_channels:
            raise ValueError(
                f"images must be [N, H, W, {self.in_channels}], got shape {images.shape}"
            )
        p = self.patch_size
        x = images.astype(self.dtype)
        if self.stem in ("conv", "conv_pool"):
            x = self._conv_stem(x)
            p = 1  # the stem already reduced the resolution by patch_size
        elif self.stem != "patch":
            raise ValueError(f"image.stem={self.stem!r}: expected {expected(IMAGE_STEMS)}")
        x = PatchEmbedding(self.width, p, self.dtype, name="embedding")(x)
        n, gh, gw, _ = x.shape
        x = x.reshape(n, gh * gw, self.width)

        with_cls = self.pool == "cls"
        if with_cls:
            cls = self.param(
                "cls", partitioned(nn.initializers.zeros, (None, None, "embed")),
                (1, 1, self.width), jnp.float32,
            )  # fmt: skip
            x = jnp.concatenate([jnp.tile(cls, [n, 1, 1]).astype(x.dtype), x], axis=1)

        if self.posemb == "learn":
            pe = self.param(
                "pos_embedding",
                partitioned(
                    nn.initializers.normal(1 / np.sqrt(self.width)), (None, "length", "embed")
                ),
                (1, x.shape[1], self.width),
                jnp.float32,
            )
        elif self.posemb == "sincos2d":
            pe = posemb_sincos_2d(gh, gw, self.width)
            if with_cls:  # the cls token gets no position
                pe = np.concatenate([np.zeros((1, self.width), np.float32), pe])
            pe = pe[None]
        else:
            raise ValueError(f"image.posemb={self.posemb!r}: expected {expected(POSEMBS)}")
        x = x + jnp.asarray(pe).astype(x.dtype)
        if self.temporal_frames:
            x = self._add_temporal_posemb(x, frames, train)
        if train and self.mask_ratio > 0:
            x = drop_patches(x, self.mask_ratio, self.make_rng("mask"), keep_first=with_cls)
        x = constrain(x, ("batch", "length", "act_embed"))

        if self.pre_norm:
            x = layer_norm(self.ln_eps, self.dtype, "pre_norm")(x)
        x = Encoder(
            depth=self.depth,
            heads=self.heads,
            mlp_dim=self.mlp_dim,
            activation=self.activation,
            ln_eps=self.ln_eps,
            dtype=self.dtype,
            attention=self.attention,
            remat=self.remat,
            remat_policy=self.remat_policy,
            scan=self.scan,
            frames=frames if self.temporal_frames else 0,
            name="encoder",
        )(x, None, frame_valid if self.temporal_frames else None)
        x = layer_norm(self.ln_eps, self.dtype, "encoder_norm")(x)
        tokens = x[:, 1:] if with_cls else x

        if self.pool == "cls":
            x = x[:, 0]
        elif self.pool == "gap":
            x = jnp.mean(x, axis=1)
        elif self.pool == "map":
            x = MAPHead(
                self.heads, self.mlp_dim, self.activation, self.ln_eps, self.dtype,
                self.attention, name="map",
            )(x)  # fmt: skip
        else:
            raise ValueError(f"image.pool={self.pool!r}: expected {expected(IMAGE_POOLS)}")

        if self.proj == "linear":
            head = nn.Dense(
                self.proj_dim,
                use_bias=False,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                kernel_init=partitioned(nn.initializers.lecun_normal(), ("embed", "mlp")),
                name="head",
            )
        elif self.proj == "none":
            head = lambda y: y
        else:
            raise ValueError(f"image.proj={self.proj!r}: expected {expected(IMAGE_PROJS)}")
        return (head(x), head(tokens)) if return_tokens else head(x)


def image_tower(
    model_config, proj: str, proj_dim: int | None = None, in_channels: int = 3
) -> VisionTransformer:
    """The ViT of `config.model` (a frozen dict), with the given projection. Keys that an
    imported Hugging Face config lacks take the defaults of a plain ViT."""
    c, i = model_config, model_config["image"]
    # Video models' divided space-time attention is a ViT option (image weights load into it).
    video = c.get("video") or {}
    temporal_frames = video["frames"] if video.get("temporal") == "space_time" else 0
    return VisionTransformer(
        image_size=i["image_size"],
        patch_size=i["patch_size"],
        width=i["width"],
        depth=i["depth"],
        heads=i["heads"],
        mlp_dim=i["mlp_dim"],
        pool=i.get("pool", "cls"),
        posemb=i.get("posemb", "learn"),
        pre_norm=i.get("pre_norm", False),
        stem=i.get("stem", "patch"),
        stem_width=i.get("stem_width", 16),
        mask_ratio=i.get("mask_ratio", 0.0),
        proj=proj,
        proj_dim=proj_dim,
        temporal_frames=temporal_frames,
        in_channels=in_channels,
        **encoder_options(c),
    )
