"""What a method is: the one description the trainer, data, evals and export read.

A method (CLIP/SigLIP, FILIP, CoCa, ...) says how to build its model, what an example batch
looks like (for init and ahead-of-time compile), which batch fields it needs from the data
pipeline, which loss terms it trains with, how to embed each modality for evals and
`vljax.load`, how two embeddings compare for retrieval, and which export formats it
supports. The trainer and the evals call these and never ask which method it is.

Models return a dict with namespaced keys: `img/emb`, `txt/emb` (L2-normalised embeddings),
`img/tokens`, `txt/tokens`, `txt/mask`, `caption/logits`, `scale`, `bias`, ... A loss is a
weighted sum of terms (`vljax/losses/terms.py`), each logged as `loss/<term>` beside `loss`.
"""

import dataclasses
import math
import zlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vljax.errors import ConfigError
from vljax.losses.terms import TERMS, TERMS_WITHOUT_CACHED_ACCUMULATION
from vljax.models.layers import freeze

# The rng purpose of loss terms that draw (TPM-CL's random token masking): `Method.rngs`
# folds it like the model's purposes, and the step hands it to the terms as `LossContext.rng`.
LOSS_RNG = "loss"


@dataclasses.dataclass(frozen=True)
class LossContext:
    """What a loss term may need besides the model outputs and the batch."""

    mesh: jax.sharding.Mesh
    batch_axes: tuple[str, ...]
    loss_config: object  # config.loss
    # (tokens [N, L], token_gates=None) -> [N, D]: the method's text encoder with the step's
    # params (differentiable), for terms that embed texts of their own making (TPM-CL's
    # masked captions); None outside a train step.
    encode_texts: Callable | None = None
    # (params, rows [n, ...], texts [m, D], counts [n]) -> [n, m]: the method's pair scorer
    # (Method.score_pairs), for terms that score pairs the model's own way (X-Pool's
    # pair_contrastive) with `params`, the step's (differentiable); None outside a train
    # step or where the method has none.
    score_pairs: Callable | None = None
    params: Any = None
    rng: jax.Array | None = None  # the step's key for purpose LOSS_RNG; None = none given


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    build_model: Callable  # config.model -> flax Module; `module(batch, train=)` -> outputs
    example_batch: Callable  # (config.model, n) -> {field: array} with the batch's shapes
    batch_fields: tuple[str, ...]  # what the data pipeline must deliver (after preprocessing)
    default_terms: dict  # {term name: weight}; config.loss.terms overrides
    encode_images: str = "encode_images"  # model method: float images -> embeddings
    encode_texts: str = "encode_texts"  # model method: tokens -> embeddings
    # model method: float clips [N, T, H, W, 3] -> embeddings in the image's place, for
    # retrieval evals on video sets (moving_shapes:retrieval); None = the method embeds no
    # videos (such an eval then says so)
    encode_videos: str | None = None
    # (image embeddings, text embeddings, direction) -> [N, M] scores, where direction is
    # "img2txt" (images query texts; also zero-shot) or "txt2img"
    similarity: Callable = None
    # (model, params, image embeddings, text embeddings, direction) -> [N, M] scores, for a
    # similarity with parameters of its own (X-Pool pools a clip's frames for each text);
    # where set, the evals and `vljax.load` score with it in place of `similarity`.
    similarity_with_params: Callable | None = None
    # model method: (frame embeddings [N, T, D], texts [M, D], counts [N]) -> [N, M], the
    # score of every pair when the method scores pairs with params of its own (X-Pool); the
    # train step hands it to the loss terms as ctx.score_pairs. None = no such scorer.
    score_pairs: str | None = None
    # (embeddings, embeddings of the same modality) -> [N, M] scores: DBNorm's gallery bank
    # (vljax/evals/dbnorm.py) compares gallery items with held-out ones of their own kind.
    # None = the method defines none (an eval that needs it says so).
    same_modality_similarity: Callable | None = None
    # Zero-shot prompt ensembling: "embedding" averages each class's prompt embeddings
    # (CLIP); "score" averages the similarity to each prompt (embeddings that are not
    # vectors, e.g. FILIP's tokens).
    prompt_ensemble: str = "embedding"
    # (model, params, float images, max_len) -> int32 [N, max_len] caption tokens (greedy),
    # for `vljax caption` and the captioning eval; None = the method has no caption head
    decode_captions: Callable | None = None
    # (params loaded by config.init_from, config) -> params shaped for this method's model
    # (Long-CLIP stretches the text position table); None = taken as they are
    adapt_init_params: Callable | None = None
    rng_purposes: tuple[str, ...] = ()  # flax rng collections the model draws from in training
    export_formats: tuple[str, ...] = ()  # `vljax export --format` values; () = none
    # Methods over three modalities (Symile): the model method that embeds the third
    # modality's tokens, and how candidates for the third are scored from the other two:
    # (image embs [N, D], caption embs [N, D], candidate embs [C, D], config.loss) -> [N, C]
    # (the loss config says which objective the run trained, hence which rule fits it).
    # None = the method has no third modality.
    encode_third: str | None = None
    score_third: Callable | None = None
    # optimizer.accum_steps > 1 runs the model in microbatches and the loss on all their
    # outputs at once (GradCache, vljax/train/step.py): every model output must be per example
    # (a leading batch axis) or a scalar of the params alone. False for a model that computes
    # across the examples of its batch: such a method is refused accumulation.
    cached_accumulation: bool = True

    def terms(self, loss_config) -> dict:
        """The weighted terms this run trains with: config.loss.terms, else the defaults."""
        terms = dict(loss_config.terms) if loss_config.get("terms") else self.default_terms
        unknown = [name for name in terms if name not in TERMS]
        if unknown:
            raise ConfigError(
                f"config.loss.terms names unknown terms {unknown}; known: {', '.join(TERMS)}"
            )
        return dict(terms)

    def check_cached_accumulation(self, config):
        """Refuses optimizer.accum_steps > 1 when the method or one of its terms cannot be
        computed from microbatch outputs (see `cached_accumulation`)."""
        accum_steps = int(config.optimizer.get("accum_steps", 1))
        if accum_steps == 1:
            return
        fix = "set --config.optimizer.accum_steps=1 (and a batch_size that fits)"
        if not self.cached_accumulation:
            raise ConfigError(
                f"config.optimizer.accum_steps = {accum_steps}: method {self.name!r} computes "
                f"across the examples of a batch, so it cannot run in microbatches; {fix}"
            )
        for name in self.terms(config.loss):
            reason = TERMS_WITHOUT_CACHED_ACCUMULATION.get(name)
            if reason is not None:
                raise ConfigError(
                    f"config.optimizer.accum_steps = {accum_steps}: loss term {name!r} {reason}, "
                    f"so it cannot be accumulated over microbatches; {fix}, or drop the term"
                )

    def loss(self, outputs, batch, ctx: LossContext):
        """Weighted sum of the configured terms -> (scalar, metrics with loss/<term>)."""
        total, metrics = None, {}
        for name, weight in self.terms(ctx.loss_config).items():
            value, extra = TERMS[name](outputs, batch, ctx)
            metrics[f"loss/{name}"] = value
            metrics.update(extra)
            # A weight of 1 adds the term itself, so a one-term loss is bit-identical to it.
            weighted = value if weight == 1 else weight * value
            total = weighted if total is None else total + weighted
        return total, metrics

    def rngs(self, key, step, microbatch=None) -> dict:
        """One key per purpose (the model's and LOSS_RNG), folded from the run's key by step
        (and microbatch), so a resumed run draws the same masks and dropout as an
        uninterrupted one."""
        key = jax.random.fold_in(key, step)
        if microbatch is not None:
            key = jax.random.fold_in(key, microbatch)
        purposes = (*self.rng_purposes, LOSS_RNG)
        return {p: jax.random.fold_in(key, zlib.crc32(p.encode())) for p in purposes}


def model_builder(module_cls) -> Callable:
    """`build_model` for a linen module whose one attribute is `config` (config.model, frozen:
    modules must be hashable)."""

    def build_model(model_config):
        cfg = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
        return module_cls(config=freeze(cfg))

    return build_model


def scored_in_blocks(score, texts: tuple, block: int, rows: int) -> np.ndarray:
    """`score(*text_block)` -> [rows, block] over the texts (arrays sharing their leading
    axis) in blocks of `block`, concatenated to float32 [rows, M]. The last block is padded
    with zero rows (empty texts) and its padding columns dropped, so a jitted `score`
    compiles once per query count."""
    out = []
    for start in range(0, len(texts[0]), block):
        chunk = [t[start : start + block] for t in texts]
        short = block - len(chunk[0])
        if short:
            chunk = [np.concatenate([c, np.zeros((short,) + c.shape[1:], c.dtype)]) for c in chunk]
        out.append(np.asarray(score(*chunk))[:, : block - short])
    return np.concatenate(out, axis=1) if out else np.zeros((rows, 0), np.float32)


def dot_similarity(image_emb, text_emb, direction=None):
    """Cosine similarity of L2-normalised embeddings: [N, D] x [M, D] -> [N, M] (the same
    both ways)."""
    return jnp.asarray(image_emb) @ jnp.asarray(text_emb).T


def mip_scores(given, candidates):
    """Symile's rule: the multilinear inner product of the given embeddings (each [N, D])
    with each candidate [C, D]: [N, C] = sum_d prod_m given_m[n, d] * cand[c, d]."""
    query = math.prod(np.asarray(g, np.float32) for g in given)
    return query @ np.asarray(candidates, np.float32).T


def pairwise_sum_scores(given, candidates):
    """Pairwise CLIP's rule: the sum over the given embeddings (each [N, D]) of their dot
    product with each candidate [C, D] (cosines of unit vectors): [N, C]."""
    cand = np.asarray(candidates, np.float32).T
    return sum(np.asarray(g, np.float32) @ cand for g in given)
