"""Loss terms: `term(outputs, batch, ctx) -> (scalar, metrics)`, named in `config.loss.terms`
(or a method's default terms) and summed with their weights by `Method.loss`."""

import jax
import jax.numpy as jnp
import optax

from vljax.choices import TPM_MASKINGS, expected
from vljax.errors import ConfigError
from vljax.losses.contrastive import contrastive_loss
from vljax.losses.filip import filip_loss
from vljax.losses.masked_image import masked_image_term
from vljax.losses.multi_positive import multi_positive_loss
from vljax.losses.negnce import negnce_loss
from vljax.losses.primary_components import primary_components
from vljax.losses.symile import symile_loss
from vljax.losses.tiled_pairs import scored_pair_loss
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


def pair_contrastive_term(outputs, batch, ctx):
    """Symmetric InfoNCE on the model's own score of every clip with every caption of the
    global batch (X-Pool pools each clip per caption, so there is no one embedding per clip
    for the pooled losses): `ctx.score_pairs` (the method's pair scorer with the step's
    params) on `img/frames` [B, T, D] and `txt/emb` [B, D], sharded over the batch and tiled
    over the gathered captions (`scored_pair_loss`, config.loss.chunk: captions per tile),
    times `scale`. Softmax only."""
    if ctx.loss_config.kind != "softmax":
        raise ConfigError(
            f"the pair_contrastive term is InfoNCE; loss.kind={ctx.loss_config.kind!r} has no "
            "form here: set --config.loss.kind=softmax"
        )
    if ctx.score_pairs is None:
        raise ConfigError(
            "the pair_contrastive term scores pairs with the model's own scorer "
            "(Method.score_pairs); this method has none: train it with the contrastive term"
        )
    value = scored_pair_loss(
        ctx.score_pairs,
        ctx.params,
        outputs["img/frames"],
        outputs["txt/emb"],
        batch.get("video_frames"),
        scale=outputs["scale"],
        mesh=ctx.mesh,
        batch_axes=ctx.batch_axes,
        chunk=ctx.loss_config.chunk,
    )
    return value, {"scale": outputs["scale"]}


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


def mlm_term(outputs, batch, ctx):
    """SNP-S3's significant-word masking: token cross-entropy of `mlm/logits` [N, L, V]
    against the caption's own tokens `mlm/targets` at the masked positions `mlm/masked` (the
    most significant pieces, vljax/models/significant_words.py), averaged over the masked
    pieces of the N captions (the global batch's, or every `model.snp.s3_every`-th). Logs
    `mlm/accuracy` (argmax right at masked pieces)."""
    targets = outputs["mlm/targets"]
    masked = outputs["mlm/masked"].astype(jnp.float32)
    logits = outputs["mlm/logits"].astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    count = jnp.maximum(jnp.sum(masked), 1.0)
    right = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return jnp.sum(nll * masked) / count, {"mlm/accuracy": jnp.sum(right * masked) / count}


def matching_term(outputs, batch, ctx):
    """SNP-S3's significant-semantic matching: binary cross-entropy of `match/logits` [B, 2]
    (each clip with its caption, label 1, and with its hard negative, label 0: the caption
    with a significant piece swapped) over `match/valid`, averaged over the pairs scored.
    Logs `matching/accuracy` and `matching/hard_negatives` (the fraction of captions that
    had a piece to swap)."""
    logits = outputs["match/logits"].astype(jnp.float32)
    valid = outputs["match/valid"].astype(jnp.float32)
    labels = jnp.broadcast_to(jnp.array([1.0, 0.0]), logits.shape)
    bce = optax.sigmoid_binary_cross_entropy(logits, labels)
    count = jnp.maximum(jnp.sum(valid), 1.0)
    right = ((logits > 0) == (labels > 0)).astype(jnp.float32)
    return jnp.sum(bce * valid) / count, {
        "matching/accuracy": jnp.sum(right * valid) / count,
        "matching/hard_negatives": jnp.mean(valid[:, 1]),
    }


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


def one_to_k_term(outputs, batch, ctx):
    """1-to-K contrastive learning (arXiv 2406.18254): every caption of an image
    (`txt/multi_emb` [B, K, D]; one per language, or DreamLIP's sub-captions of one long
    caption) is a positive of the image's row (`img/emb`), in one softmax over all B K texts;
    each text's softmax is over the B images; (i2t + t2i) / 2 / K as in the authors' code.
    Absent captions (`txt/multi_valid` False) are masked out of every softmax and mean
    (vljax/losses/multi_positive.py). A softmax loss, gathered like impl all_gather: other
    `loss.kind` / `loss.impl` values are refused."""
    cfg = ctx.loss_config
    if cfg.kind != "softmax":
        raise ConfigError(
            f"the one_to_k term is a softmax loss (its positives share one softmax); "
            f"loss.kind={cfg.kind!r} has no such form: set --config.loss.kind=softmax, or train "
            "with the per_caption term, which takes either kind"
        )
    if cfg.impl != "all_gather":
        raise ConfigError(
            f"the one_to_k term gathers every caption like impl all_gather; "
            f"loss.impl={cfg.impl!r} has no 1-to-K form: set --config.loss.impl=all_gather, or "
            "train with the per_caption term, which takes every impl"
        )
    value = multi_positive_loss(
        outputs["img/emb"],
        outputs["txt/multi_emb"],
        outputs["txt/multi_valid"],
        scale=outputs["scale"],
        mesh=ctx.mesh,
        batch_axes=ctx.batch_axes,
    )
    return value, {"scale": outputs["scale"]}


def _present_captions(outputs):
    """`txt/multi_emb` [B, K, D] with each absent caption replaced by its example's first
    present one: the pairwise loss takes no mask, so an absent caption is trained on as a
    repeat of a true pair rather than as an embedding of padding."""
    emb, valid = outputs["txt/multi_emb"], outputs["txt/multi_valid"]
    first = jnp.argmax(valid, axis=1)  # the first present caption of each example
    return jnp.where(valid[..., None], emb, jnp.take_along_axis(emb, first[:, None, None], 1))


def per_caption_term(outputs, batch, ctx):
    """M2-Encoder's bilingual objective: every image is seen with each of its K captions
    (`txt/multi_emb`, one per language): the mean over k of the pairwise contrastive loss of
    `img/emb` and caption k (the "contrastive" term's loss: `loss.kind` softmax | sigmoid,
    `loss.impl` all_gather | ring | grouped, M2-Encoder's grouped aggregation).

    Absent captions are not masked (the pairwise losses take no mask) but replaced by their
    example's first caption, so every pair trained on is true; with every caption present
    (the bilingual shapes data) the term is exactly the mean of the K pairwise losses."""
    captions = _present_captions(outputs)
    k = captions.shape[1]
    total = sum(_contrastive(outputs["img/emb"], captions[:, i], outputs, ctx) for i in range(k))
    return total / k, {"scale": outputs["scale"]}


def sampled_caption_term(outputs, batch, ctx):
    """The 1-to-K paper's baseline, one language per step: caption k = randint(ctx.rng, 0, K)
    for the whole step (ctx.rng is folded by step, and by microbatch with accumulation, so a
    resumed run picks the same k), then the pairwise contrastive loss of `img/emb` and
    caption k (as in per_caption; an absent caption k is replaced by its example's first).
    All K captions are still encoded, forward and backward (the cost of K), but only
    caption k is trained on. Logs the pick as `sampled_caption/k`."""
    if ctx.rng is None:
        raise ValueError("the sampled_caption term needs the step's key (ctx.rng)")
    captions = _present_captions(outputs)
    k = jax.random.randint(ctx.rng, (), 0, captions.shape[1])
    value = _contrastive(outputs["img/emb"], jnp.take(captions, k, axis=1), outputs, ctx)
    return value, {"scale": outputs["scale"], "sampled_caption/k": k}


def time_order_term(outputs, batch, ctx):
    """Each caption prefers its clip to the same clip played backwards (`img/emb_reversed`,
    the model's `order_outputs`): softplus(scale * (t . v_reversed - t . v)), the two-way
    softmax loss of the pair, averaged over the clips of more than one real frame (batch
    field `video_frames`; a 1-frame clip reversed is itself). Time-reversed clips as hard
    negatives, as in "Test of Time" (Bagad et al., CVPR 2023): in-batch negatives almost never
    differ from the positive by direction or order alone, so the contrastive term does not ask
    the temporal module for them. Per clip: nothing to gather, exact on any mesh."""
    if "img/emb_reversed" not in outputs:
        raise ConfigError(
            "the time_order term needs a temporal module that sees the frame embeddings' "
            "order: set --config.model.video.temporal=transformer (mean pooling and "
            "space_time's mean embed a clip played backwards the same)"
        )
    zvid, zrev, ztxt = (
        outputs[k].astype(jnp.float32) for k in ("img/emb", "img/emb_reversed", "txt/emb")
    )
    gap = outputs["scale"] * jnp.sum(ztxt * (zrev - zvid), axis=-1)
    counts = batch.get("video_frames")
    weight = jnp.ones_like(gap) if counts is None else (counts > 1).astype(jnp.float32)
    weight = weight / jnp.maximum(jnp.sum(weight), 1.0)
    value = jnp.sum(jax.nn.softplus(gap) * weight)
    return value, {"time_order/accuracy": jnp.sum((gap < 0) * weight)}


# Symile's three embeddings: of the batch fields image, tokens and third_tokens.
SYMILE_EMBEDDINGS = ("img/emb", "txt/emb", "third/emb")


def symile_term(outputs, batch, ctx):
    """Symile (arXiv 2411.01053) on `img/emb`, `txt/emb`, `third/emb`: `symile_loss` with
    the logit scale and `loss.symile_negatives` ("n" | "n_squared"). A missing modality is,
    as in the paper, its tower's embedding of the blank placeholder the data pipeline put in
    its place (vljax/data/third_modality.py), so the loss takes no masks: its all-ones
    convention for a missing vector puts MIPs of unit vectors (|MIP| <= 1 / sqrt(D) typically)
    beside dot products and sums of up to sqrt(D), and a demo trained that way diverged
    (docs/methods.md, Symile)."""
    value = symile_loss(
        [outputs[name] for name in SYMILE_EMBEDDINGS],
        scale=outputs["scale"],
        mesh=ctx.mesh,
        batch_axes=ctx.batch_axes,
        negatives=ctx.loss_config.symile_negatives,
    )
    return value, {"scale": outputs["scale"]}


def pairwise_term(outputs, batch, ctx):
    """Pairwise CLIP over three modalities (Symile's baseline): the mean of the contrastive
    losses (the "contrastive" term's: `loss.kind`, `loss.impl`) of the three pairs of
    `img/emb`, `txt/emb`, `third/emb`. A missing modality reaches it, as it does the symile
    term, as its tower's embedding of the data pipeline's blank placeholder."""
    embs = [outputs[name] for name in SYMILE_EMBEDDINGS]
    pairs = [(0, 1), (0, 2), (1, 2)]
    total = sum(_contrastive(embs[a], embs[b], outputs, ctx) for a, b in pairs)
    return total / len(pairs), {"scale": outputs["scale"]}


# Terms that need more than the model outputs of the whole batch, so that optimizer.accum_steps
# > 1 (GradCache: the loss sees the concatenated microbatch outputs) cannot compute them:
# {term: why}, refused by Method.check_cached_accumulation.
TERMS_WITHOUT_CACHED_ACCUMULATION = {
    "tpm_cl": "embeds its masked captions with the text tower inside the loss "
    "(ctx.encode_texts), which would run the tower on the whole batch at once",
    "pair_contrastive": "scores the pairs with the model's params inside the loss "
    "(ctx.score_pairs), which the loss of cached microbatch outputs does not have",
}

TERMS = {
    "contrastive": contrastive_term,
    "filip": filip_term,
    "pair_contrastive": pair_contrastive_term,
    "caption": caption_term,
    "short_caption": short_caption_term,
    "masked_image": masked_image_term,
    "negnce": negnce_term,
    "mlm": mlm_term,
    "matching": matching_term,
    "tpm_cl": tpm_cl_term,
    "one_to_k": one_to_k_term,
    "per_caption": per_caption_term,
    "sampled_caption": sampled_caption_term,
    "symile": symile_term,
    "pairwise": pairwise_term,
    "time_order": time_order_term,
}
