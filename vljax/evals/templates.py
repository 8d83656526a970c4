"""Zero-shot prompt templates ("{}" is replaced by the class name) and the named lists an eval
entry may give instead of its own: `templates: "imagenet80"`, `classnames: "imagenet"`
(vljax/evals/imagenet_metadata.py)."""

from vljax.choices import NAMED_CLASSNAMES, NAMED_TEMPLATES, expected
from vljax.errors import ConfigError, DataError
from vljax.evals.imagenet_metadata import IMAGENET_NAMES, IMAGENET_TEMPLATES_80

ENGLISH = [
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a drawing of a {}.",
    "a rendering of a {}.",
    "a photo of the {}.",
    "{}",
]

CHINESE = [
    "一张{}的照片。",
    "{}的图片。",
    "一张{}的图片。",
    "{}的图像。",
    "一幅{}的画。",
    "{}",
]

_BY_LANG = {"en": ENGLISH, "zh": CHINESE}


def default_templates(lang):
    """The template list for a language code ("en" or "zh")."""
    if lang not in _BY_LANG:
        raise ConfigError(f"no default templates for lang={lang!r}; known: {sorted(_BY_LANG)}")
    return list(_BY_LANG[lang])


_NAMED_TEMPLATES = {"imagenet80": IMAGENET_TEMPLATES_80}


def named_templates(name: str) -> list[str]:
    """An eval entry's `templates: "imagenet80"` (NAMED_TEMPLATES)."""
    if name not in NAMED_TEMPLATES:
        raise ConfigError(
            f"templates {name!r} is not a named template list ({expected(NAMED_TEMPLATES)}); "
            'give one of those or a list of prompts such as ["a photo of a {}."]'
        )
    return list(_NAMED_TEMPLATES[name])


def named_classnames(name: str, dataset_classes, dataset: str) -> list[str]:
    """An eval entry's `classnames: "imagenet"` (NAMED_CLASSNAMES) for a split whose class
    labels are ImageNet-1k wnids (`vljax prepare --from-imagenet`): the name of each of them,
    in the split's order. A split with a subset of the classes (ImageNet-R, -A: 200) is scored
    among its own classes only, as their papers do."""
    if name not in NAMED_CLASSNAMES:
        raise ConfigError(
            f"classnames {name!r} is not a named class list ({expected(NAMED_CLASSNAMES)}); "
            "give one of those or a list of class names"
        )
    if not dataset_classes:
        raise DataError(
            f'classnames "imagenet": {dataset} has no class labels; prepare the ImageNet '
            "folder with `vljax prepare --from-imagenet DIR`"
        )
    unknown = [c for c in dataset_classes if c not in IMAGENET_NAMES]
    if unknown:
        raise DataError(
            f'classnames "imagenet" names ImageNet-1k wnids, but {dataset} has '
            f"{len(unknown)} other labels ({', '.join(map(repr, unknown[:3]))}); prepare it "
            "with `vljax prepare --from-imagenet DIR`, or give the entry its own classnames"
        )
    return [IMAGENET_NAMES[c] for c in dataset_classes]
