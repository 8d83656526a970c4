"""COCO and Flickr30k retrieval sets from Karpathy's split files, for `vljax prepare`.

```
vljax prepare --from-karpathy dataset_coco.json --images COCO_DIR --name coco --data-dir D
vljax prepare --from-karpathy dataset_flickr30k.json --images flickr30k-images --name flickr30k \
    --data-dir D [--split test (default) | train,restval,val,test]
```

A split file (from Karpathy's `caption_datasets.zip`) is `{"images": [{"filename",
"filepath" (COCO only: "train2014" / "val2014"), "split": "train" | "restval" | "val" |
"test", "sentences": [{"raw": "A man ...", "tokens": [...]}, ...]}, ...]}`. Each image
becomes one example with all its sentences as English captions (COCO and Flickr30k: 5, the
standard test protocol ranks all of them), in the tfds split of its Karpathy split. The
image is `DIR/filepath/filename`, or `DIR/filename` when that is missing (an `--images`
folder that holds the files themselves). Missing or unreadable images are skipped and
counted by `prepare.prepare`, as for every other source.
"""

from __future__ import annotations

import json
import os
from collections import Counter

from vljax.data.records import Record, Skip
from vljax.errors import ConfigError, DataError

SPLITS = ("train", "restval", "val", "test")
_FORMAT = (
    'Karpathy\'s format is {"images": [{"filename": ..., "filepath": ... (COCO), "split": '
    '"test", "sentences": [{"raw": ...}, ...]}, ...]}: pass dataset_coco.json or '
    "dataset_flickr30k.json from caption_datasets.zip"
)


def parse_splits(value: str | None) -> tuple[str, ...]:
    """`--split` for Karpathy files: comma-separated names of SPLITS; default test."""
    splits = tuple(s.strip() for s in (value or "test").split(",") if s.strip())
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ConfigError(
            f"--split {value!r} with --from-karpathy: use a comma-separated list of "
            f"{', '.join(SPLITS)} (default test, the retrieval benchmark)"
        )
    return splits


def _load(json_path: str) -> list:
    if not os.path.isfile(json_path):
        raise DataError(
            f"Karpathy split file {json_path!r} does not exist or is not a file; pass "
            "dataset_coco.json or dataset_flickr30k.json (from caption_datasets.zip)"
        )
    try:
        with open(json_path, encoding="utf-8-sig") as f:
            obj = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{json_path} is not a JSON file ({e}); {_FORMAT}") from None
    images = obj.get("images") if isinstance(obj, dict) else None
    if not isinstance(images, list) or not any(
        isinstance(e, dict) and {"filename", "split", "sentences"} <= set(e) for e in images
    ):
        found = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise DataError(
            f"{json_path} is not a Karpathy split file (found {found}, no images with "
            f"filename, split and sentences); {_FORMAT}"
        )
    return images


def _captions(sentences) -> list[tuple[str, str]]:
    out = []
    for s in sentences if isinstance(sentences, list) else []:
        if not isinstance(s, dict):
            continue
        raw = s.get("raw")
        if not isinstance(raw, str) or not raw.strip():  # older files: tokens only
            tokens = s.get("tokens")
            raw = " ".join(t for t in tokens if isinstance(t, str)) if tokens else ""
        if raw.strip():
            out.append(("en", raw.strip()))
    return out


def karpathy_records(
    json_path: str, images_dir: str | None, splits: tuple[str, ...], skips: list[Skip]
) -> list[Record]:
    """The images of `splits` as prepare Records (see the module docstring)."""
    if not images_dir or not os.path.isdir(images_dir):
        raise DataError(
            f"--images {images_dir!r} is not a folder; --from-karpathy needs the folder that "
            "holds the images (COCO: the one with train2014/ and val2014/; Flickr30k: "
            "flickr30k-images/)"
        )
    entries = _load(json_path)
    name = os.path.basename(json_path)
    records, seen = [], Counter()
    for i, e in enumerate(entries):
        src = f"{name}:images[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("filename"), str):
            skips.append(Skip(src, "missing field", "no 'filename'"))
            continue
        split = e.get("split")
        if not isinstance(split, str):
            skips.append(Skip(src, "missing field", "no 'split'"))
            continue
        seen[split] += 1
        if split not in splits:
            continue
        captions = _captions(e.get("sentences"))
        rel = os.path.join(e.get("filepath") or "", e["filename"])
        if not captions:
            skips.append(Skip(rel, "missing field", f"{src} has no sentences with 'raw' text"))
            continue
        path = os.path.join(images_dir, rel)
        if not os.path.exists(path):  # --images may be the folder of the files themselves
            flat = os.path.join(images_dir, e["filename"])
            path = flat if os.path.exists(flat) else path
        records.append(Record(source=rel, captions=captions, split=split, path=path))
    if not records and not skips:
        have = ", ".join(f"{s} {n}" for s, n in seen.most_common()) or "none"
        raise DataError(
            f"{json_path} has no images in split(s) {', '.join(splits)} (images per split: "
            f"{have}); pass --split with one of those"
        )
    return records
