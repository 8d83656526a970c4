"""Captions of an example: which languages a run allows, and the captions it may pick."""


def languages(lang) -> tuple[str, ...] | None:
    """config.data.train.lang -> allowed languages; None = any."""
    if lang is None or lang == "any":
        return None
    if isinstance(lang, str):
        return tuple(x.strip() for x in lang.split(",") if x.strip())
    return tuple(lang)


def caption_candidates(captions, langs: tuple[str, ...] | None) -> list[str]:
    """All captions of an example in the allowed languages.

    captions: str | {lang: str | [str]} | [str] | [(lang, str)]; an unknown language ("")
    counts as allowed only when any language is.
    """
    if isinstance(captions, str):
        pairs = [("", captions)]
    elif isinstance(captions, dict):
        pairs = []
        for lang, text in captions.items():
            texts = [text] if isinstance(text, str) else list(text)
            pairs += [(lang, t) for t in texts]
    else:
        pairs = [c if isinstance(c, tuple | list) else ("", c) for c in captions]
    if langs is None:
        return [t for _, t in pairs if t]
    return [t for lang, t in pairs if t and lang in langs]
