"""Loss terms: `term(outputs, batch, ctx) -> (scalar, metrics)`, named in `config.loss.terms`
(or a method's default terms) and summed with their weights by `Method.loss`."""

from vljax.losses.contrastive import contrastive_loss
from vljax.losses.filip import filip_loss


def contrastive_term(outputs, batch, ctx):
    """CLIP / SigLIP on the pooled embeddings `img/emb`, `txt/emb` (config.loss.kind, impl)."""
    cfg = ctx.loss_config
    value = contrastive_loss(
        outputs["img/emb"],
        outputs["txt/emb"],
        scale=outputs["scale"],
        bias=outputs["bias"],
        kind=cfg.kind,
        impl=cfg.impl,
        mesh=ctx.mesh,
        batch_axes=ctx.batch_axes,
        chunk=cfg.chunk,
        group_size=cfg.group_size,
    )
    metrics = {"scale": outputs["scale"]}
    if outputs["bias"] is not None:
        metrics["bias"] = outputs["bias"]
    return value, metrics


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


TERMS = {"contrastive": contrastive_term, "filip": filip_term}
