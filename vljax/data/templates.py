"""Default zero-shot prompt templates (format strings with "{}" for the class name).

A small ensemble in the spirit of CLIP's ImageNet prompts; a config entry's `templates`
replaces it. The class embedding is the normalised mean of the template embeddings.
"""

from __future__ import annotations

TEMPLATES = {
    "en": [
        "a photo of a {}.",
        "a photo of the {}.",
        "a picture of a {}.",
        "an image of a {}.",
        "a close-up photo of a {}.",
        "a photo of a small {}.",
        "a photo of a large {}.",
        "a {}.",
    ],
    "zh": [
        "一张{}的照片。",
        "{}的照片。",
        "一张关于{}的图片。",
        "一幅{}的图像。",
        "一张{}的特写照片。",
        "一张小{}的照片。",
        "一张大{}的照片。",
        "{}。",
    ],
}


def default_templates(lang: str = "en") -> list[str]:
    """Templates for lang; English for languages without their own list."""
    return list(TEMPLATES.get(lang, TEMPLATES["en"]))
