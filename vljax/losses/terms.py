"""Loss terms: `term(outputs, batch, ctx) -> (scalar, metrics)`, named in `config.loss.terms`
(or a method's default terms) and summed with their weights by `Method.loss`."""

import jax.numpy as jnp
import optax

from vljax.choices import TPM_MASKINGS, expected
from vljax.errors import ConfigError
from vljax.losses.contrastive import contrastive_loss
from vljax.losses.filip import filip_loss
from vljax.losses.masked_image import masked_image_term
from vljax.losses.negnce import negnce_loss
from vljax.losses.primary_components import primary_components
from vljax.losses.token_masking import (
    mask_top_tokens,
    masked_fraction,
    random_scores,
    token_relevance,
)
from vljax.losses.tpm_cl import similarity_gaps, tpm_cl_loss
from vljax.models.layers import l2_normalize
from vljax.token_ids import PAD_ID


def _contrastive(zimg, ztxt, outputs, ctx):
    cfg = ctx.loss_config
    return contrastive_loss(
        zimg,
        ztxt,
        scale=outputs["scale"],
        bias=outputs["bias"],
        kind=cfg.kind,
        impl=cfg.impl,
        mesh=ctx.mesh,
        batch_axes=ctx.batch_axes,
        chunk=cfg.chunk,
        group_size=cfg.group_size,
    )


def contrastive_term(outputs, batch, ctx):
    """CLIP / SigLIP on the pooled embeddings `img/emb`, `txt/emb` (config.loss.kind, impl)."""
    value = _contrastive(outputs["img/emb"], outputs["txt/emb"], outputs, ctx)
    metrics = {"scale": outputs["scale"]}
    if outputs["bias"] is not None:
        metrics["bias"] = outputs["bias"]
    return value, metrics


def short_caption_term(outputs, batch, ctx):
    """Long-CLIP's primary component matching: the image embeddings reduced to their
    `loss.primary_components` leading principal components (over the global batch),
    re-normalised, against the short captions' `txt/short_emb`; the same contrastive loss."""
    coarse = primary_components(outputs["img/emb"], int(ctx.loss_config.primary_components))
    return _contrastive(l2_normalize(coarse), outputs["txt/short_emb"], outputs, ctx), {}


def filip_term(outputs, batch, ctx):
    """FILIP's late interaction on `img/tokens`, `txt/tokens`, `txt/mask` (config.loss.chunk:
    texts per tile)."""
    value = filip_loss(
        outputs["img/tokens"],
        outputs["txt/tokens"],
        outputs["txt/mask"],
        scale=outputs["scale"],
        mesh=ctx.mesh,
        batch_axes=ctx.batch_axes,
        chunk=ctx.loss_config.chunk,
    )
    return value, {"scale": outputs["scale"]}


def caption_term(outputs, batch, ctx):
    """Captioning (CoCa): token cross-entropy of `caption/logits` [B, L, V] against the
    caption's own tokens, averaged over the real (non-padding) tokens of the global batch,
    EOS included (the decoder learns where to stop)."""
    targets = batch["tokens"]
    real = (targets != PAD_ID).astype(jnp.float32)
    logits = outputs["caption/logits"].astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return jnp.sum(nll * real) / jnp.maximum(jnp.sum(real), 1.0), {}


def negnce_term(outputs, batch, ctx):
    """NegNCE on the pooled embeddings: InfoNCE plus `loss.negnce_weight` x the mean
    hard-negative term (negatives beating their positive by more than `loss.negnce_margin`
    logits). In place of "contrastive", beside any other term of a method."""
    cfg = ctx.loss_config
    value = negnce_loss(
        outputs["img/emb"],
        outputs["txt/emb"],
        scale=outputs["scale"],
        mesh=ctx.mesh,
        batch_axes=ctx.batch_axes,
        margin=float(cfg.negnce_margin),
        weight=float(cfg.negnce_weight),
    )
    return value, {"scale": outputs["scale"]}


def _tpm_scores(outputs, batch, ctx):
    """Which caption tokens TPM-CL masks: loss.tpm_masking (vljax/losses/token_masking.py)."""
    masking = ctx.loss_config.tpm_masking
    if masking == "relevance":
        return token_relevance(ctx.encode_texts, outputs["img/emb"], batch["tokens"])
    if masking == "random":
        if ctx.rng is None:
            raise ValueError("tpm_cl with loss.tpm_masking='random' needs the step's key (ctx.rng)")
        return random_scores(ctx.rng, batch["tokens"])
    raise ConfigError(f"loss.tpm_masking={masking!r}: expected {expected(TPM_MASKINGS)}")


def tpm_cl_term(outputs, batch, ctx):
    """TPM-CL: each caption with `loss.tpm_mask_ratio` of its pieces masked
    (`loss.tpm_masking`: the most relevant to the match, or random) is a hard negative,
    embedded by the method's text encoder (ctx.encode_texts); the triplet loss asks the
    caption to beat it, for its own image, by `loss.tpm_margin` x the fraction masked.
    Beside the method's contrastive term; needs pooled `img/emb`, `txt/emb`."""
    cfg = ctx.loss_config
    ratio = cfg.tpm_mask_ratio
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ConfigError(f"loss.tpm_mask_ratio={ratio!r}: expected a fraction in (0, 1]")
    if ctx.encode_texts is None:
        raise ValueError("the tpm_cl term needs ctx.encode_texts (the train step sets it)")
    tokens = batch["tokens"]
    masked_tokens, masked = mask_top_tokens(tokens, _tpm_scores(outputs, batch, ctx), ratio)
    zneg = ctx.encode_texts(masked_tokens)
    zimg, ztxt = outputs["img/emb"], outputs["txt/emb"]
    fraction = masked_fraction(tokens, masked)
    value = tpm_cl_loss(zimg, ztxt, zneg, fraction, margin=float(cfg.tpm_margin))
    return value, {"tpm_cl/similarity_gap": jnp.mean(similarity_gaps(zimg, ztxt, zneg))}


TERMS = {
    "contrastive": contrastive_term,
    "filip": filip_term,
    "caption": caption_term,
    "short_caption": short_caption_term,
    "masked_image": masked_image_term,
    "negnce": negnce_term,
    "tpm_cl": tpm_cl_term,
}
