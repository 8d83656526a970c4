"""Default zero-shot prompt templates; "{}" is replaced by the class name."""

from vljax.errors import ConfigError

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
