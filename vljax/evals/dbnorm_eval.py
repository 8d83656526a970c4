"""DBNorm as an option of a retrieval eval: the same recall both ways after re-scoring with a
query bank and a gallery bank (vljax/evals/dbnorm.py), and the hub occurrence before and
after.

```python
config.evals.shapes_retrieval = dict(
    type="retrieval", dataset="shapes:retrieval", key="shapes",
    dbnorm=dict(
        bank="shapes:retrieval_bank",  # held-out image-caption pairs (any retrieval dataset spec)
        size=1000,                     # optional: pairs drawn from the bank (its default size)
        method="dis",                  # "dis" | "ddis" (vljax.choices.DBNORM_METHODS); "dis"
        beta_query=0.5025, beta_gallery=3.0, top_k=1,  # optional: dbnorm.py's defaults
    ),
)
```

Keys, beside the plain `retrieval/<key>/txt2img_r1` etc.: `retrieval/<key>/txt2img_r1_dbnorm`
(and `_r5_dbnorm`, `_r10_dbnorm`, and the same for `img2txt`), `retrieval/<key>/txt2img_hubness`
and `retrieval/<key>/txt2img_hubness_dbnorm` (and `img2txt_...`): `dbnorm.hub_occurrence` of
the plain and of the re-scored matrix.

For text->image the query bank is the bank's captions and the gallery bank its images; for
image->text the other way round. Query-gallery scores come from the method's similarity, the
gallery bank's from its same-modality similarity (`Method.same_modality_similarity`). The bank
must share no image and no caption with the test pairs (an equal item would be a test query
or gallery item inside the bank); the eval refuses one that does.
"""

import dataclasses
import hashlib

import numpy as np

from vljax.choices import DBNORM_METHODS, expected
from vljax.data.evalsets import load_eval_set
from vljax.errors import ConfigError
from vljax.evals import dbnorm
from vljax.evals.metrics import ranks_of_labels

KS = (1, 5, 10)


@dataclasses.dataclass(frozen=True)
class DBNormOptions:
    bank: str
    size: int | None = None
    method: str = "dis"
    beta_query: float = dbnorm.BETA_QUERY
    beta_gallery: float = dbnorm.BETA_GALLERY
    top_k: int = dbnorm.TOP_K


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(DBNormOptions))


def dbnorm_options(name: str, option) -> DBNormOptions:
    """Checks `config.evals.<name>.dbnorm` and fills in the defaults."""
    where = f"config.evals.{name}.dbnorm"
    option = option.to_dict() if hasattr(option, "to_dict") else option
    if not isinstance(option, dict):
        raise ConfigError(f"{where} must be a dict with keys {', '.join(OPTION_NAMES)}")
    unknown = sorted(set(option) - set(OPTION_NAMES))
    if unknown:
        raise ConfigError(f"{where} has unknown keys {unknown}; known: {', '.join(OPTION_NAMES)}")
    if not option.get("bank"):
        raise ConfigError(f"{where} needs 'bank': held-out pairs, e.g. 'shapes:retrieval_bank'")
    options = DBNormOptions(**{k: v for k, v in option.items() if v is not None})
    if options.method not in DBNORM_METHODS:
        raise ConfigError(
            f"{where}.method = {options.method!r}; expected {expected(DBNORM_METHODS)}"
        )
    for key in ("size", "top_k"):
        value = getattr(options, key)
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ConfigError(f"{where}.{key} must be a positive integer, got {value!r}")
    for key in ("beta_query", "beta_gallery"):
        if not float(getattr(options, key)) > 0:
            raise ConfigError(f"{where}.{key} must be positive, got {getattr(options, key)!r}")
    return options


def _digests(images) -> set:
    return {hashlib.sha1(np.ascontiguousarray(im).tobytes()).digest() for im in images}


def check_disjoint(name: str, bank: dict, data: dict):
    shared_images = len(_digests(bank["images"]) & _digests(data["images"]))
    shared_captions = len(set(bank["captions"]) & set(data["captions"]))
    if shared_images or shared_captions:
        raise ConfigError(
            f"config.evals.{name}.dbnorm.bank shares {shared_images} images and "
            f"{shared_captions} captions with the test pairs; DBNorm's banks must be held-out "
            "data (for shapes: 'shapes:retrieval_bank', with the two sizes summing to at "
            "most 4,560)"
        )


def load_bank(name: str, spec, config, data: dict, cache: dict) -> dict:
    """The bank's images and captions (cached per eval, in the eval's language)."""
    if (name, "dbnorm_bank") not in cache:
        entry = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
        options = dbnorm_options(name, entry["dbnorm"])
        bank_spec = {"dataset": options.bank, "size": options.size, "lang": entry.get("lang")}
        bank = load_eval_set(bank_spec, config)
        check_disjoint(name, bank, data)
        cache[(name, "dbnorm_bank")] = bank
    return cache[(name, "dbnorm_bank")]


def recall_and_hubness(scores, options: DBNormOptions, query_bank, gallery_bank, direction):
    """Plain and DBNorm recall@k and hub occurrence of [N, N] scores (query i matches
    gallery item i)."""
    normalize = dbnorm.NORMALIZERS[options.method]
    kwargs = {key: getattr(options, key) for key in dbnorm.NORMALIZER_OPTIONS[options.method]}
    rescored = normalize(scores, query_bank, gallery_bank, **kwargs)
    right = np.arange(len(scores))
    ranks = ranks_of_labels(rescored, right)
    out = {f"{direction}_r{k}_dbnorm": float(np.mean(ranks < k)) for k in KS}
    out[f"{direction}_hubness"] = dbnorm.hub_occurrence(scores)
    out[f"{direction}_hubness_dbnorm"] = dbnorm.hub_occurrence(rescored)
    return out


def dbnorm_retrieval(name, spec, config, encoder, data, image_emb, text_emb, cache) -> dict:
    """`retrieval/<key>/..._dbnorm` and `..._hubness` keys (module docstring) for a retrieval
    eval whose entry sets `dbnorm`; image_emb, text_emb: the test pairs' embeddings."""
    key = spec.get("key", None) or name
    options = dbnorm_options(name, spec["dbnorm"])
    bank = load_bank(name, spec, config, data, cache)
    bank_images = encoder.encode_images(bank["images"])
    bank_texts = encoder.encode_texts(bank["captions"])
    # [queries or bank items, gallery items] in both directions.
    txt2img = recall_and_hubness(
        encoder.similarity(image_emb, text_emb, "txt2img").T,
        options,
        query_bank=encoder.similarity(image_emb, bank_texts, "txt2img").T,
        gallery_bank=encoder.same_modality_similarity(bank_images, image_emb),
        direction="txt2img",
    )
    img2txt = recall_and_hubness(
        encoder.similarity(image_emb, text_emb, "img2txt"),
        options,
        query_bank=encoder.similarity(bank_images, text_emb, "img2txt"),
        gallery_bank=encoder.same_modality_similarity(bank_texts, text_emb),
        direction="img2txt",
    )
    return {f"retrieval/{key}/{metric}": value for metric, value in {**txt2img, **img2txt}.items()}
