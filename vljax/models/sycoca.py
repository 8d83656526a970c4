"""SyCoCa (Ma et al. 2024, arXiv 2401.02137): CoCa plus text-guided masked image modeling.

`SyCoCa` is `CoCa` (contrastive + captioning heads, unchanged) with a third head, TG-MIM:
reconstruct the pixels of masked image patches from the visible patches and the caption.
`config.model.mim` (configs/common.py): `ratio` (fraction of the patches masked), `masking`
("attentive" | "random") and `decoder_depth` (blocks of the reconstruction decoder).

Choices made here (the paper leaves them open or differs in scale):

- Contrastive and captioning paths are CoCa's, on the unmasked image: the image encoder's
  forward pass over the full image feeds the poolers exactly as in `CoCa.__call__`.
- Attentive masking: a patch's score is the caption's relevance to it: the norm of the
  gradient of the image-text similarity <txt/emb, img/emb> with respect to the patch's token
  (unmasked pass, the batch's own caption, under stop_gradient), normalised over the patches;
  the top `M = round(ratio * patches)` patches (the ones that matter most for matching the
  caption) are masked, deterministically (no rng, no noise). A first score, each patch alone
  through the contrastive pooler against the caption's embedding (MaskCLIP's dense
  features), did not localise the shapes on the demo (no better than random masking); the
  relevance score did (docs/methods.md).
  Random masking: M distinct patches from uniform noise drawn with `make_rng("mask")`.
- No leak through the encoder: the masked patches' pixels are set to 0 (mid-grey in [-1, 1])
  and the same image encoder runs a second time on that image, so a visible token has never
  seen a masked pixel (also through conv stems, whose receptive fields cross patch borders).
  Reusing the unmasked pass's tokens would let self-attention carry the masked content into
  the visible tokens and the reconstruction need no text. Cost: one more image-encoder pass
  (forward and backward) per training step.
- Reconstruction decoder (`decoder_depth` pre-LN blocks, the image tower's width, heads and
  MLP): its input is, per patch position, the masked pass's token where visible and a learned
  mask token where masked, plus learned decoder position embeddings. Each block: full
  self-attention over the patches, cross-attention to the unimodal text decoder's outputs
  (START, the caption's tokens, CLS; layer-normed; padding keys masked), MLP. Then a layer
  norm and a linear head to `patch_size**2 * 3` pixels per patch. Gradients of the loss reach
  the image encoder (visible tokens) and the text decoder (what the decoder cross-attends to).
- Target: the raw normalised pixels of each masked patch ([-1, 1], row-major patches, each
  flattened as (row, column, channel)), no per-patch normalisation; `masked_image_term` takes
  the mean squared error over the masked patches.

Outputs in training (`train=True`): CoCa's keys plus `mim/pred` [N, M, P] (float32),
`mim/target` [N, M, P], `mim/index` [N, M] (int32, patch indices, row-major) and `mim/score`
[N, patches] (the relevance score above, whichever the masking). Outside training there is
no masking and the outputs are exactly CoCa's. FLIP's patch dropout (`image.mask_ratio > 0`)
is refused: MIM needs every patch's token at its position.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vljax.choices import MIM_MASKINGS, expected
from vljax.errors import ConfigError
from vljax.models.coca import CoCa
from vljax.models.layers import (
    Attention,
    Dtype,
    MlpBlock,
    constrain,
    layer_norm,
    partitioned,
)


def patchify(images, patch_size: int):
    """[N, H, W, C] -> [N, (H/p) * (W/p), p * p * C]: row-major patches, each flattened as
    (row, column, channel). Works on numpy and jax arrays."""
    n, h, w, c = images.shape
    p = patch_size
    x = images.reshape(n, h // p, p, w // p, p, c)
    x = x.transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, (h // p) * (w // p), p * p * c)


class MimBlock(nn.Module):
    """Pre-LN: x + self_attn(ln(x)), x + cross_attn(ln(x), text, text_mask), x + mlp(ln(x))."""

    heads: int
    mlp_dim: int
    activation: str = "gelu"
    ln_eps: float = 1e-5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, text, text_mask):
        x = constrain(x, ("batch", "length", "act_embed"))
        y = layer_norm(self.ln_eps, self.dtype, "ln_1")(x)
        x = x + Attention(self.heads, self.dtype, name="attn")(y, y)
        y = layer_norm(self.ln_eps, self.dtype, "ln_2")(x)
        x = x + Attention(self.heads, self.dtype, name="cross_attn")(y, text, text_mask)
        y = layer_norm(self.ln_eps, self.dtype, "ln_3")(x)
        x = x + MlpBlock(self.mlp_dim, self.activation, self.dtype, name="mlp")(y)
        return constrain(x, ("batch", "length", "act_embed"))


class MimDecoder(nn.Module):
    """Patch tokens [N, T, D] (masked ones to be replaced), a mask [N, T] (True = masked),
    text outputs [N, S, Dt] and their validity [N, S] -> predicted pixels [N, T, pixels]."""

    depth: int
    heads: int
    mlp_dim: int
    pixels: int
    activation: str = "gelu"
    ln_eps: float = 1e-5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens, masked, text, text_valid):
        _, t, d = tokens.shape
        mask_token = self.param(
            "mask_token",
            partitioned(nn.initializers.normal(0.02), (None, None, "embed")),
            (1, 1, d),
            jnp.float32,
        )
        pos = self.param(
            "pos_embedding",
            partitioned(nn.initializers.normal(0.02), (None, "length", "embed")),
            (1, t, d),
            jnp.float32,
        )
        x = jnp.where(masked[:, :, None], mask_token.astype(self.dtype), tokens.astype(self.dtype))
        x = x + pos.astype(self.dtype)
        text = layer_norm(self.ln_eps, self.dtype, "ln_text")(text)
        text_mask = text_valid[:, None, None, :]
        for i in range(self.depth):
            x = MimBlock(
                self.heads,
                self.mlp_dim,
                self.activation,
                self.ln_eps,
                self.dtype,
                name=f"block_{i}",
            )(x, text, text_mask)
        x = layer_norm(self.ln_eps, self.dtype, "norm")(x)
        return nn.Dense(
            self.pixels,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=partitioned(nn.initializers.lecun_normal(), ("embed", None)),
            bias_init=partitioned(nn.initializers.zeros, (None,)),
            name="head",
        )(x).astype(jnp.float32)


def _mim_config(c):
    m = c["mim"]  # configs/common.py declares it with its defaults
    ratio, masking, depth = m["ratio"], m["masking"], m["decoder_depth"]
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise ConfigError(f"model.mim.ratio={ratio!r}: expected a fraction in (0, 1)")
    if masking not in MIM_MASKINGS:
        raise ConfigError(f"model.mim.masking={masking!r}: expected {expected(MIM_MASKINGS)}")
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ConfigError(f"model.mim.decoder_depth={depth!r}: expected an int >= 1")
    return float(ratio), masking, int(depth)


class SyCoCa(CoCa):
    """`config` is CoCa's (`config.model`) plus `mim`: ratio, masking, decoder_depth."""

    def setup(self):
        super().setup()
        c = self.config
        i = c["image"]
        self.mim_ratio, self.mim_masking, depth = _mim_config(c)
        if i.get("mask_ratio", 0.0) > 0:
            raise ConfigError(
                "model.image.mask_ratio > 0 (FLIP's patch dropout) cannot combine with SyCoCa's "
                "masked image modeling, which needs every patch's token; set it to 0"
            )
        size, p = i["image_size"], i["patch_size"]
        if size % p:
            raise ConfigError(f"model.image.image_size={size} is not a multiple of patch_size={p}")
        self.patch_size = p
        self.grid = size // p
        self.mim = MimDecoder(
            depth=depth,
            heads=i["heads"],
            mlp_dim=i["mlp_dim"],
            pixels=p * p * 3,
            activation=c["activation"],
            ln_eps=c["ln_eps"],
            dtype=self.dtype,
        )

    def num_masked(self) -> int:
        patches = self.grid * self.grid
        return min(max(1, round(self.mim_ratio * patches)), patches - 1)

    def patch_scores(self, image_tokens, txt_emb):
        """The caption's relevance of each patch, [N, T] (rows sum to 1): the norm of the
        gradient of the image-text similarity <txt_emb, img/emb> with respect to the patch's
        token (how much the patch moves the match to this caption), normalised over the
        patches. Under stop_gradient."""

        def similarity(module, tokens, txt):
            return jnp.sum(module._image_embedding(tokens) * txt)

        value, backward = nn.vjp(similarity, self, image_tokens, txt_emb)
        _, token_grads, _ = backward(jnp.ones_like(value))
        relevance = jnp.linalg.norm(token_grads.astype(jnp.float32), axis=-1)
        relevance = relevance / jnp.maximum(jnp.sum(relevance, axis=-1, keepdims=True), 1e-30)
        return jax.lax.stop_gradient(relevance)

    def _mask_index(self, score):
        m = self.num_masked()
        if self.mim_masking == "random" and not self.is_initializing():
            noise = jax.random.uniform(self.make_rng("mask"), score.shape)
            return jax.lax.top_k(noise, m)[1].astype(jnp.int32)
        return jax.lax.top_k(score, m)[1].astype(jnp.int32)

    def __call__(self, batch, train: bool = False):
        if not (train or self.is_initializing()):
            return super().__call__(batch, train)
        # CoCa's forward (as CoCa.__call__), keeping what the MIM head reuses.
        images, tokens = batch["image"], batch["tokens"]
        length = tokens.shape[1]
        image_tokens = self._image_tokens(images, train)
        x, mask = self._unimodal(tokens, with_cls=True)
        memory = self.caption_pool(image_tokens)
        logits = self._caption_head(x[:, :length], mask[:, :, :length, :length], memory)
        txt_emb = self._text_embedding(x[:, -1])
        out = {
            "img/emb": self._image_embedding(image_tokens),
            "txt/emb": txt_emb,
            "caption/logits": logits,
            "scale": jnp.exp(self.log_scale),
            "bias": self.bias,
        }

        # TG-MIM.
        score = self.patch_scores(jax.lax.stop_gradient(image_tokens), txt_emb)
        index = self._mask_index(score)
        n, t = score.shape
        masked = jnp.zeros((n, t), bool).at[jnp.arange(n)[:, None], index].set(True)
        g, p = self.grid, self.patch_size
        pixel_mask = jnp.repeat(jnp.repeat(masked.reshape(n, g, g), p, axis=1), p, axis=2)
        masked_images = jnp.where(pixel_mask[..., None], 0.0, images).astype(images.dtype)
        visible_tokens = self._image_tokens(masked_images, train)
        # The CLS row of the causal mask is the text's validity: START, non-pad tokens, CLS.
        text_valid = mask[:, 0, -1, :]
        pred = self.mim(visible_tokens, masked, x, text_valid)
        take = lambda a: jnp.take_along_axis(a, index[:, :, None], axis=1)
        target = take(patchify(images.astype(jnp.float32), p))
        if self.is_initializing() and not train:
            return out  # the MIM head's params exist; eval outputs stay CoCa's
        out.update(
            {
                "mim/pred": take(pred),
                "mim/target": jax.lax.stop_gradient(target),
                "mim/index": index,
                "mim/score": score,
            }
        )
        return out
