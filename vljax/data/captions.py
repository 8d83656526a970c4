"""Captions of an example: which languages a run allows, and the captions it may pick (one,
or several per example for the multi-caption methods: one per language, or the sentences of
one caption)."""

import re

import numpy as np

# Where a sentence ends: after . ! ? followed by white space (so "3.5" stays whole), or after
# a CJK full stop, exclamation or question mark (no space follows those).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


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


def caption_per_language(captions, langs: tuple[str, ...], rng) -> list[str | None]:
    """One caption of the example per language of `langs`, in that order; a language with
    several captions gets one picked with `rng` (the example's seeded generator), one with
    none gets None (an absent caption)."""
    picked = []
    for lang in langs:
        cands = caption_candidates(captions, (lang,))
        if len(cands) > 1:
            picked.append(cands[int(rng.integers(len(cands)))])
        else:
            picked.append(cands[0] if cands else None)
    return picked


def sentences(text: str) -> list[str]:
    """The sentences of a caption, in order, stripped; empty ones dropped."""
    return [s.strip() for s in _SENTENCE_BREAK.split(text) if s.strip()]


def sampled_sentences(text: str, k: int, rng) -> list[str]:
    """DreamLIP's sub-captions: the sentences of `text`, or k of them drawn without
    replacement with `rng` when it has more; kept in the caption's order."""
    parts = sentences(text)
    if len(parts) <= k:
        return parts
    keep = np.sort(rng.choice(len(parts), size=k, replace=False))
    return [parts[i] for i in keep]
