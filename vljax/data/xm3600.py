"""Crossmodal-3600 (XM3600) retrieval set from its captions file and images, for `vljax prepare`.

```
vljax prepare --from-xm3600 captions.jsonl --images DIR --name xm3600 --data-dir D \
    [--languages en,de,ja (default: all 36)]
```

`captions.jsonl` holds one JSON object per image: `{"image/key": "<Open Images id>", "<lang>":
{"caption": [...], "caption/tokenized": [...], ...}, ...}` with one entry per language code of
LANGUAGES; the image is `DIR/<image/key>.jpg`. Each image becomes one example of split `test`
with all its captions in the chosen languages, tagged with their language (the raw
`caption`; the tokenized forms are not used: the run's tokenizer reads the text). A language an
image lacks is left out of that image (it stays in the others' retrieval) and counted in
`missing`; missing or unreadable images are skipped and counted by `prepare.prepare`, as for
every other source.
"""

from __future__ import annotations

import os
from collections import Counter

from vljax.data.records import Record, Skip, json_lines, storable
from vljax.errors import ConfigError, DataError

# The 36 languages of XM3600, by the codes its captions file uses.
LANGUAGES = (
    "ar", "bn", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fil", "fr", "he", "hi", "hr",
    "hu", "id", "it", "ja", "ko", "mi", "nl", "no", "pl", "pt", "quz", "ro", "ru", "sv", "sw",
    "te", "th", "tr", "uk", "vi", "zh",
)  # fmt: skip
KEY = "image/key"
_FORMAT = (
    'XM3600\'s captions.jsonl has one object per line: {"image/key": "<image id>", "en": '
    '{"caption": ["..."], ...}, "de": {...}, ...}; pass captions.jsonl from the '
    "Crossmodal-3600 release (captions.zip)"
)


def parse_languages(value: str | None) -> tuple[str, ...]:
    """`--languages`: comma-separated codes of LANGUAGES; default all of them."""
    if not value:
        return LANGUAGES
    langs = tuple(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))
    bad = [s for s in langs if s not in LANGUAGES]
    if bad or not langs:
        raise ConfigError(
            f"--languages {value!r}: unknown XM3600 language code(s) {', '.join(bad) or '(none)'}"
            f"; use a comma-separated list of {', '.join(LANGUAGES)} (default: all 36)"
        )
    return langs


def _captions(value, lang: str) -> list[tuple[str, str]] | None:
    """The (lang, text) captions of one language entry; None when the entry is malformed."""
    texts = value.get("caption") if isinstance(value, dict) else None
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return None
    return [(lang, t.strip()) for t in texts if t.strip()]


def xm3600_records(
    jsonl_path: str,
    images_dir: str | None,
    languages: tuple[str, ...],
    skips: list[Skip],
    missing: Counter,
) -> list[Record]:
    """The images of captions.jsonl as prepare Records (see the module docstring); adds to
    `missing` the number of images without captions in each language."""
    if not images_dir or not os.path.isdir(images_dir):
        raise DataError(
            f"--images {images_dir!r} is not a folder; --from-xm3600 needs the folder that "
            "holds XM3600's <image/key>.jpg files (images.tgz unpacked)"
        )
    if not os.path.isfile(jsonl_path):
        raise DataError(
            f"XM3600 captions file {jsonl_path!r} does not exist or is not a file; {_FORMAT}"
        )
    records, objects = [], 0
    for src, obj in json_lines(jsonl_path, skips, whole_json_hint=_FORMAT):
        key = obj.get(KEY) if isinstance(obj, dict) else None
        if not isinstance(key, str) or not key or not storable(obj):
            skips.append(Skip(src, "missing field", f"no {KEY!r} string"))
            continue
        objects += 1
        captions = []
        for lang in languages:
            caps = _captions(obj.get(lang), lang) or []  # malformed: as missing
            if not caps:
                missing[lang] += 1
            captions += caps
        if not captions:
            skips.append(Skip(key, "missing field", f"{src}: no captions in {languages}"))
            continue
        path = os.path.join(images_dir, f"{key}.jpg")
        records.append(Record(source=key, captions=captions, split="test", path=path))
    if not objects:
        raise DataError(f"{jsonl_path} has no line with an {KEY!r}; {_FORMAT}")
    return records


def missing_summary(missing: Counter) -> str:
    """One line for the prepare summary: images without captions in each language."""
    if not missing:
        return "languages missing: none (every image has captions in every language)"
    return "languages missing (those images are kept for their other languages): " + ", ".join(
        f"{lang} {n}" for lang, n in sorted(missing.items())
    )
