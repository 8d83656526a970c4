"""Evaluation data: `load_eval_set(spec, config)` for zero-shot classification and retrieval.

```python
ds = load_eval_set("shapes:zeroshot", config)          # or an entry of config.evals
ds = load_eval_set(config.evals.my_eval, config)       # {"type", "dataset", ...}
# dict(images=uint8 [N, S, S, 3], captions=list[str], labels=int32 [N] | None,
#      classnames=list[str] | None, templates=list[str] | None, lang=str,
#      all_captions=list[list[str]] (tfds sets only; absent = one caption per image),
#      captions_by_lang={lang: list[list[str]]} (entries with `langs` only))
# A video set holds videos=uint8 [N, T, S, S, 3] (T = config.model.video.frames) in place of
# images, and events=list[str] (what each clip shows): `gallery_field` says which.
```

`S = config.model.image.image_size`. Specs:

- `shapes:zeroshot`: 1,200 single-shape images (50 per class), labels in the 24 colour x shape
  classes, `classnames` = `shapes.classnames(lang)`, templates "a big {}" / "a small {}"
  (the class embedding averages both sizes).
- `shapes:retrieval`: 1,000 image-caption pairs with distinct captions, 1 or 2 shapes.
- `shapes:retrieval_bank`: 1,000 more pairs, none a scene of `shapes:retrieval` (while the two
  sizes sum to at most `shapes.RETRIEVAL_SCENES` = 4,560): DBNorm's held-out banks.
- `shapes_long:retrieval`, `shapes_long_sentences:retrieval`: 500 2 x 2 grids with distinct
  long captions, one sentence or one sentence per shape (vljax/data/shapes_long.py).
- `moving_shapes:retrieval`: 1,000 clips of the video demo data (vljax/data/moving_shapes.py,
  its `retrieval` split) with their caption in the eval's language and `events` (move, change
  or order); no two clips share a caption in either language, so `size` is at most 2,352
  (`moving_shapes.distinct_captions`). `langs` reads the other language's captions of the
  same clips.
- `shapes_symile:test`: 1,008 (image, shift caption) pairs, each (colour, shift) pair 28
  times, with `labels` (the third modality's index among `candidates`, the 6 colour names)
  and `candidate_tokens` (them spelled): the `third_modality` eval (Symile).
- `tfds:NAME:SPLIT`: a dataset written by `vljax prepare`; images go through
  `preprocess.inference_image` (shorter side to S, bicubic, centre crop). A video set
  (`--from-video-manifest`) holds `videos`, each clip's frames resampled to T and sized alike.
  For retrieval `all_captions[i]` holds every caption of image i in the chosen language (COCO
  and Flickr30k: 5) and `captions[i]` the first of them; for zero-shot and few-shot the labels
  come from the ClassLabel feature and `classnames` from its names unless the entry gives
  `classnames`.

Entry options (all optional): `lang` (default: config.data.train.lang, "en" when that is
"any"), `langs` (retrieval: a list of languages, or "all" for a tfds set's every language:
`captions_by_lang[lang][i]` holds image i's captions in it, empty where it has none; a tfds set
then keeps every image with a caption in any of them, and `all_captions[i]` may be empty),
`templates` (list of format strings with "{}"; default `templates.default_templates`),
`classnames` (list), `size` (number of examples; shapes and tfds). The held-out shapes splits
use a fixed seed (`EVAL_SEED`) so that runs with different `config.seed` are comparable.
`classnames: "imagenet"` names a split labelled by wnid (`vljax prepare --from-imagenet`) with
ImageNet's class names, its classes only (-R, -A: 200); `templates: "imagenet80"` is CLIP's 80
ImageNet prompts (both in vljax/evals/templates.py).
"""

from __future__ import annotations

import numpy as np

from vljax.data import shapes
from vljax.data.captions import caption_candidates, languages
from vljax.data.moving_shapes import MovingShapesSource
from vljax.data.shapes_long import ShapesLongSource
from vljax.data.shapes_symile import symile_test_set
from vljax.data.tfds_source import clip_length, load_tfds_eval
from vljax.errors import DataError
from vljax.evals.templates import default_templates, named_classnames, named_templates

EVAL_SEED = 1_000_003
# A retrieval set's gallery: the field holding it -> its name in the retrieval keys
# (`retrieval/<key>/txt2img_r1`, `retrieval/<key>/txt2video_r1`; metrics.direction_names).
GALLERIES = {"images": "img", "videos": "video"}


def _entry(spec) -> dict:
    if isinstance(spec, str):
        return {"dataset": spec}
    if hasattr(spec, "to_dict"):
        return spec.to_dict()
    return dict(spec)


def eval_lang(entry: dict, config) -> str:
    lang = entry.get("lang")
    if not lang:
        langs = languages(config.data.train.lang)
        lang = langs[0] if langs else "en"
    return lang


def gallery_field(data: dict) -> str:
    """The field of GALLERIES that a loaded eval set holds ("images" or "videos")."""
    fields = [f for f in GALLERIES if f in data]
    if len(fields) != 1:
        raise DataError(f"an eval set holds one of {list(GALLERIES)}, this one has {fields}")
    return fields[0]


def entry_langs(entry: dict) -> list[str]:
    """An entry's `langs` as a list ("en,zh" or ["en", "zh"]), duplicates dropped."""
    langs = entry.get("langs") or []
    langs = [x.strip() for x in langs.split(",")] if isinstance(langs, str) else langs
    return list(dict.fromkeys(langs))


def load_eval_set(spec, config) -> dict:
    """See the module docstring."""
    entry = _entry(spec)
    dataset = entry.get("dataset")
    if not dataset:
        raise DataError(f"eval entry {entry!r} has no 'dataset' (e.g. 'tfds:NAME:SPLIT')")
    lang = eval_lang(entry, config)
    size = int(config.model.image.image_size)
    if dataset.startswith("shapes:"):
        out = _shapes(dataset.split(":", 1)[1], size, lang, entry.get("size"))
    elif dataset in ("shapes_long:retrieval", "shapes_long_sentences:retrieval"):
        out = _shapes_long(size, entry.get("size"), sentences=dataset.startswith("shapes_long_"))
    elif dataset == "moving_shapes:retrieval":
        out = _moving_shapes(config, lang, entry_langs(entry), entry.get("size"))
    elif dataset == "shapes_symile:test":
        third = config.model.third
        out = symile_test_set(
            size, entry.get("size"), EVAL_SEED, int(third.max_len), int(third.vocab_size)
        )
    elif dataset.startswith("tfds:"):
        out = load_tfds_eval(dataset, entry, config, size, lang)
    else:
        raise DataError(
            f"unknown eval dataset {dataset!r}: use shapes:zeroshot, shapes:retrieval, "
            "shapes:retrieval_bank, shapes_long:retrieval, shapes_long_sentences:retrieval, "
            "moving_shapes:retrieval, shapes_symile:test or "
            "tfds:NAME:SPLIT (prepared with `vljax prepare`)"
        )
    if entry.get("langs") and "captions_by_lang" not in out:
        # shapes: the same images in every language, each loaded again in that language.
        out["captions_by_lang"] = {}
        for la in entry_langs(entry):
            captions = load_eval_set({**entry, "lang": la, "langs": None}, config)["captions"]
            out["captions_by_lang"][la] = [[c] for c in captions]
    if isinstance(entry.get("classnames"), str):  # a named list: "imagenet"
        out["classnames"] = named_classnames(entry["classnames"], out.get("classnames"), dataset)
    elif entry.get("classnames"):
        out["classnames"] = list(entry["classnames"])
    if isinstance(entry.get("templates"), str):  # a named list: "imagenet80"
        out["templates"] = named_templates(entry["templates"])
    elif entry.get("templates"):
        out["templates"] = list(entry["templates"])
    if out.get("classnames") is not None and not out.get("templates"):
        out["templates"] = default_templates(lang)
    for t in out.get("templates") or []:
        if "{}" not in t:
            raise DataError(f"zero-shot template {t!r} has no '{{}}' for the class name")
    out["lang"] = lang
    return out


def _shapes_long(image_size: int, n, sentences: bool = False) -> dict:
    """Long-caption retrieval (English): 2 x 2 shape grids, every caption distinct (one
    sentence per shape with `sentences`)."""
    src = ShapesLongSource(
        "retrieval", size=n, seed=EVAL_SEED, image_size=image_size, sentences=sentences
    )
    examples = [src[i] for i in range(len(src))]
    return dict(
        images=np.stack([ex["image"] for ex in examples]),
        captions=[ex["captions"]["en"] for ex in examples],
        labels=None,
        classnames=None,
        templates=None,
    )


def _moving_shapes(config, lang: str, langs: list[str], n) -> dict:
    """moving_shapes' retrieval split at the model's size and clip length, captions in `lang`
    (and `captions_by_lang` for `langs`: the clips drawn once, not once per language)."""
    for la in (lang, *langs):
        if la not in shapes.LANGS:
            raise DataError(f"moving_shapes captions exist in {shapes.LANGS}, not {la!r}")
    src = MovingShapesSource(
        "retrieval",
        size=n,
        seed=EVAL_SEED,
        image_size=int(config.model.image.image_size),
        frames=clip_length(config, "moving_shapes:retrieval"),
    )
    examples = [src[i] for i in range(len(src))]
    out = dict(
        videos=np.stack([ex["video"] for ex in examples]),
        captions=[ex["captions"][lang] for ex in examples],
        events=[ex["event"] for ex in examples],
        labels=None,
        classnames=None,
        templates=None,
    )
    if langs:
        out["captions_by_lang"] = {la: [[ex["captions"][la]] for ex in examples] for la in langs}
    return out


def _shapes(split: str, image_size: int, lang: str, n) -> dict:
    if split not in ("zeroshot", "retrieval", "retrieval_bank"):
        raise DataError(
            f"shapes eval split must be zeroshot, retrieval or retrieval_bank, got {split!r}"
        )
    if lang not in shapes.LANGS:
        raise DataError(f"shapes captions exist in {shapes.LANGS}, not {lang!r}")
    src = shapes.ShapesSource(split, size=n, seed=EVAL_SEED, image_size=image_size)
    images = np.empty((len(src), image_size, image_size, 3), np.uint8)
    captions = []
    labels = np.empty((len(src),), np.int32)
    for i in range(len(src)):
        ex = src[i]
        images[i] = ex["image"]
        captions.append(caption_candidates(ex["captions"], (lang,))[0])
        labels[i] = ex["label"]
    if split == "zeroshot":
        return dict(
            images=images,
            captions=captions,
            labels=labels,
            classnames=shapes.classnames(lang),
            templates=list(shapes.SHAPES_TEMPLATES[lang]),
        )
    return dict(images=images, captions=captions, labels=None, classnames=None, templates=None)
