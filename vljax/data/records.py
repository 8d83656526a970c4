"""The pieces every `vljax prepare` input form shares: the candidate example (`Record`), the
skipped one (`Skip`), the image and video file extensions, and reading JSON-lines files strictly.
vljax/data/prepare.py and the benchmark readers (karpathy.py, xm3600.py, imagenet.py) use them."""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

from vljax.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# What `--from-video-manifest` reads (with PyAV, vljax/data/video_files.py); a manifest line
# naming another extension is skipped as "not a video".
VIDEO_EXTS = (".mp4", ".webm", ".avi", ".mkv", ".mov")
# JPEG quality of the images and video frames prepare re-encodes.
JPEG_QUALITY = 95


@dataclass
class Record:
    """One candidate example before its image is checked."""

    source: str  # for reports: "manifest.jsonl:12", "shard-0.tar:key", a path
    captions: list[tuple[str, str]]  # (lang or "", text)
    label: str | None = None
    split: str = "train"
    path: str | None = None  # image on disk, or
    span: tuple[int, int] | None = None  # (offset, size) of the image inside path (a tar)


@dataclass
class Skip:
    source: str
    reason: str
    detail: str = ""

    def to_json(self) -> str:
        return json.dumps(
            dict(source=self.source, reason=self.reason, detail=self.detail), ensure_ascii=False
        )


def utf8_error(raw: bytes, e: UnicodeDecodeError) -> str:
    return f"byte 0x{raw[e.start]:02x} at offset {e.start} ({e.reason}): save the file as UTF-8"


def storable(value) -> bool:
    """False when a string in value holds a lone surrogate, which UTF-8 (and so the tfds Text
    feature and skipped.jsonl) cannot store: JSON allows the escape "\\ud800", and os/tarfile
    carry a file name's undecodable bytes as surrogates."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_lines(
    path: str, skips: list[Skip], whole_json_hint: str | None = None
) -> Iterator[tuple[str, object]]:
    """("file:line", parsed object) for each non-blank line of a JSON-lines file. Bytes are
    decoded line by line and strictly: a wrong byte skips its line, counted in `skips`, rather
    than becoming a U+FFFD inside a caption that nobody sees; a line that is not JSON is skipped
    and counted too. A UTF-16 file is refused. With `whole_json_hint`, a first line that opens a
    JSON document but does not parse (a pretty-printed JSON file, not JSON lines) is refused
    with that hint."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            src = f"{os.path.basename(path)}:{lineno}"
            if lineno == 1 and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise DataError(
                    f"{path} is UTF-16 (as Windows PowerShell's `>` writes it), not UTF-8; "
                    f"convert it, e.g. `iconv -f UTF-16 -t UTF-8 {path} > fixed.jsonl`"
                )
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                skips.append(Skip(src, "not utf-8", utf8_error(raw, e)))
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                if whole_json_hint and lineno == 1 and line.lstrip().startswith(("{", "[")):
                    raise DataError(f"{path} is not JSON lines ({e}); {whole_json_hint}") from None
                skips.append(Skip(src, "bad json", str(e)))
                continue
            yield src, obj
