"""`vljax prepare`: local image-text files -> a tfds dataset in ArrayRecord format, without TF.

```
vljax prepare --manifest FILE.jsonl       --name NAME --data-dir DIR [--max-side N] [--workers K]
vljax prepare --from-folder IMAGES_DIR    --name NAME --data-dir DIR [--label-from-dir]
vljax prepare --from-webdataset 'a-*.tar' --name NAME --data-dir DIR
vljax prepare --from-imagenet VAL_DIR [--labels GROUND_TRUTH.txt] --name NAME --data-dir DIR
vljax prepare --from-karpathy dataset_coco.json --images DIR --name NAME --data-dir DIR
vljax prepare --from-xm3600 captions.jsonl --images DIR --name NAME --data-dir DIR [--languages L]
vljax prepare --from-video-manifest FILE.jsonl --name NAME --data-dir DIR [--frames T]
    [--sampling uniform|fps|random_segment] [--fps F] [--frame-size S] [--seed N]
    [--max-pixels P (default MAX_PIXELS)] [--max-caption-chars C (default MAX_CAPTION_CHARS)]
```

Manifest lines: `{"image": path (relative to the manifest's folder, or absolute),
"caption": str | {lang: str | [str]} | [str, ...], "label": optional class name,
"split": optional, default "train"}`. A line needs an image and a caption or a label.
A video manifest's lines name `"video"` (.mp4 .webm .avi .mkv .mov) instead of `"image"`;
each clip is stored as T sampled frames (vljax/data/video_frames.py, video_files.py).
Folder: every image file with a sidecar `STEM.txt` (one caption per non-empty line); with
`--label-from-dir` the image's folder name is its label. WebDataset: tar shards whose members
share a key, `KEY.jpg|jpeg|png|webp` plus `KEY.txt` or `KEY.json` (a manifest-like object
with `caption` / `captions` / `label`). Karpathy's COCO / Flickr30k split files: see
vljax/data/karpathy.py (the test split by default, every image with all its captions).
ImageNet-1k validation (and -V2, -R, -A, -Sketch) folders: vljax/data/imagenet.py (class
folders, or the flat layout with the devkit's labels; labels are wnids, split test by default).

Text is UTF-8 (a leading BOM is allowed): manifest lines, sidecar `.txt` files and webdataset
`.txt`/`.json` members are decoded strictly, and one that is not UTF-8 is skipped ("not utf-8",
with the line number and byte), never read with replacement characters. So are strings that
UTF-8 cannot store (a JSON `"\ud800"` escape, a file name with undecodable bytes). A UTF-16
manifest is refused as a whole, with the command that converts it.

Captions longer than `--max-caption-chars` (MAX_CAPTION_CHARS) are cut to it, at the last
space when there is one near the end; the example is kept and the summary counts the cut
captions.

Images with more than `--max-pixels` (MAX_PIXELS) pixels are skipped ("too many pixels", with
their size) from the header alone, before any decode; PIL's own decompression-bomb check
(a warning, then an error at twice its limit) is replaced by this one. The others are fully
decoded to check them. An EXIF orientation (phone photos) is applied, so the stored pixels are
upright: training decodes ignore EXIF. Non-RGB images (grayscale, RGBA, CMYK, palette, 16-bit)
are converted to RGB, and images with a side above `--max-side` are downscaled (bicubic);
converted, rotated or resized images are re-encoded as JPEG (quality 95, no EXIF, so no
orientation tag to apply twice); RGB JPEG/PNG files that need none of this keep their
original bytes.

Features: `image` (Image; for a video manifest `video`, a Sequence of T JPEG Images),
`captions` (Sequence(Text)), `langs` (Sequence(Text), "" where the manifest gave no language),
`id` (Text: where the example came from), and `label` (ClassLabel with the sorted label names)
when any example has a label (-1 where one has none).

Bad data never stops a prepare: unreadable, truncated, empty, missing, oversized or non-image
files (for a video manifest: files PyAV cannot open or decode, or without a video stream or
frames), text that is not UTF-8 and manifest lines that are not JSON objects or lack fields are
skipped; the summary counts them by reason and `DIR/NAME/skipped.jsonl` lists them
(`{"source", "reason", "detail"}`). What the user must fix instead (a missing input, a bad
flag value, an existing dataset without `--overwrite`, no usable example at all) raises a
`vljax.errors` UserError naming the problem and the fix. The dataset is written under
`DIR/.NAME.incomplete-*` and renamed to `DIR/NAME` when complete, so a crash leaves no dataset
that reads as whole.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import multiprocessing as mp
import os
import shutil
import tarfile
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from vljax.choices import VIDEO_SAMPLINGS, expected
from vljax.data.imagenet import imagenet_records
from vljax.data.karpathy import karpathy_records, parse_splits
from vljax.data.preprocess import to_rgb
from vljax.data.records import (
    IMAGE_EXTS,
    JPEG_QUALITY,
    VIDEO_EXTS,
    Record,
    Skip,
    json_lines,
    storable,
    utf8_error,
)
from vljax.data.video_files import check_video
from vljax.data.video_frames import DEFAULT_FRAME_SIZE, DEFAULT_FRAMES, VideoOptions
from vljax.data.xm3600 import missing_summary, parse_languages, xm3600_records
from vljax.errors import ConfigError, DataError
from vljax.extras import require_extra

VERSION = "1.0.0"
# 50 MP: a 48 MP phone photo (8064x6048) passes, 150 MB decoded as RGB in a worker; a 10000x10000
# image, which PIL lets through with only a warning (550 MB at peak), is skipped. The check
# reads the header only, so a refused image is never decoded.
MAX_PIXELS = 50_000_000
# Far above what a text tower reads (tokenizers cut at max_len, tens of tokens) and above long
# descriptive captions (a few hundred characters); what is beyond it is scraped page text, not
# a caption, and would only bloat the dataset and the tokenizer's training texts.
MAX_CAPTION_CHARS = 1000


@dataclass
class Report:
    written: Counter = field(default_factory=Counter)  # split -> count
    skipped: list[Skip] = field(default_factory=list)
    truncated: int = 0  # captions of written examples cut to max_caption_chars
    max_caption_chars: int = MAX_CAPTION_CHARS


# -- captions ---------------------------------------------------------------------------------


def parse_captions(value) -> list[tuple[str, str]]:
    """str | {lang: str | [str]} | [str | {lang: str}] -> [(lang, text)] (empty texts dropped)."""
    out = []
    if isinstance(value, str):
        out.append(("", value))
    elif isinstance(value, dict):
        for lang, text in value.items():
            texts = [text] if isinstance(text, str) else text
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError(f"caption for language {lang!r} must be a string or list")
            out += [(str(lang), t) for t in texts]
    elif isinstance(value, list):
        for item in value:
            out += parse_captions(item)
    else:
        raise ValueError(
            f"caption must be a string, a {{lang: text}} object or a list, got {value!r}"
        )
    return [(lang, t.strip()) for lang, t in out if t and t.strip()]


def truncate_caption(text: str, limit: int) -> str:
    """text cut to at most `limit` characters: at the last whitespace when that keeps at least
    half of it, else at the limit (text without spaces, e.g. Chinese, or one huge word)."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if not (text[limit].isspace() or cut[-1].isspace()):  # inside a word: drop its start
        head = cut.rsplit(None, 1)[0]
        if len(head) >= limit // 2:
            cut = head
    return cut.rstrip()


# -- input forms ------------------------------------------------------------------------------


def manifest_records(path: str, skips: list[Skip], media: str = "image") -> Iterator[Record]:
    """The records of a manifest whose lines name their file in the field `media`: "image"
    (--manifest) or "video" (--from-video-manifest, a file with one of VIDEO_EXTS)."""
    base = os.path.dirname(os.path.abspath(path))
    for src, obj in json_lines(path, skips):
        rec = _record_from_obj(obj, src, skips)
        if rec is None:
            continue
        file = obj.get(media)
        if not isinstance(file, str) or not file:
            skips.append(Skip(src, "missing field", f"no {media!r} path"))
            continue
        ext = os.path.splitext(file)[1].lower()
        if media == "video" and ext not in VIDEO_EXTS:
            skips.append(
                Skip(f"{src} {file}", "not a video", f"extension {ext!r} is none of {VIDEO_EXTS}")
            )
            continue
        rec.path = file if os.path.isabs(file) else os.path.join(base, file)
        rec.source = f"{src} {file}"
        yield rec


def _record_from_obj(obj, src: str, skips: list[Skip]) -> Record | None:
    if not isinstance(obj, dict):
        skips.append(Skip(src, "bad json", f"expected an object, got {type(obj).__name__}"))
        return None
    if not storable(obj):
        skips.append(Skip(src, "not utf-8", "a \\u escape is a lone surrogate, not a character"))
        return None
    value = obj.get("caption", obj.get("captions"))
    try:
        captions = parse_captions(value) if value is not None else []
    except ValueError as e:
        skips.append(Skip(src, "bad field", str(e)))
        return None
    label = obj.get("label")
    if label is not None and not isinstance(label, str | int):
        skips.append(Skip(src, "bad field", f"label must be a class name, got {label!r}"))
        return None
    label = None if label is None or label == "" else str(label)
    if not captions and label is None:
        skips.append(Skip(src, "missing field", "no caption and no label"))
        return None
    split = obj.get("split") or "train"
    if not isinstance(split, str) or not split.replace("_", "").isalnum():
        skips.append(Skip(src, "bad field", f"split must be a word like 'train', got {split!r}"))
        return None
    return Record(source=src, captions=captions, label=label, split=split)


def folder_records(root: str, skips: list[Skip], split: str, label_from_dir: bool):
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in IMAGE_EXTS:
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if not storable(rel):
                skips.append(Skip(rel, "not utf-8", "the file or folder name is not UTF-8"))
                continue
            txt = os.path.join(dirpath, stem + ".txt")
            captions = []
            if os.path.exists(txt):
                with open(txt, "rb") as f:
                    raw = f.read()
                try:
                    text = raw.decode("utf-8-sig")
                except UnicodeDecodeError as e:
                    skips.append(Skip(rel, "not utf-8", f"{stem}.txt: {utf8_error(raw, e)}"))
                    continue
                captions = [("", line.strip()) for line in text.splitlines() if line.strip()]
            label = os.path.basename(dirpath) if label_from_dir and dirpath != root else None
            if not captions and label is None:
                skips.append(Skip(rel, "missing field", f"no caption file {stem}.txt"))
                continue
            yield Record(source=rel, captions=captions, label=label, split=split, path=path)


def webdataset_records(patterns: Sequence[str], skips: list[Skip], split: str):
    paths = sorted({p for pat in patterns for p in glob.glob(pat)})
    if not paths:
        raise DataError(
            f"no tar shards match {list(patterns)}; check the paths, and quote a glob "
            "('shards/*.tar') or list the shards"
        )
    for shard in paths:
        try:
            tar = tarfile.open(shard)
        except (tarfile.TarError, OSError) as e:
            skips.append(Skip(os.path.basename(shard), "unreadable shard", str(e)))
            continue
        groups: dict[str, dict[str, bytes]] = {}
        order = []
        try:
            for m in tar:
                if not m.isfile():
                    continue
                base = os.path.basename(m.name)
                if "." not in base or base.startswith("."):
                    continue
                stem, ext = base.split(".", 1)
                key = os.path.join(os.path.dirname(m.name), stem)
                if key not in groups:
                    groups[key] = {}
                    order.append(key)
                ext = ext.lower()
                if ext in ("jpg", "jpeg", "png", "webp"):  # read later, in the workers
                    groups[key][ext] = (m.offset_data, m.size)
                else:
                    groups[key][ext] = tar.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            skips.append(Skip(os.path.basename(shard), "truncated shard", str(e)))
        tar.close()
        for key in order:
            yield from _wds_record(shard, key, groups[key], skips, split)


def _wds_record(shard_path, key, parts, skips, split):
    src = f"{os.path.basename(shard_path)}:{key}"
    if not storable(src):
        skips.append(Skip(src, "not utf-8", "the member name is not UTF-8"))
        return
    image_ext = next((e for e in ("jpg", "jpeg", "png", "webp") if e in parts), None)
    if image_ext is None:
        skips.append(Skip(src, "missing field", f"no image member (has {sorted(parts)})"))
        return
    obj = {}
    if "json" in parts:
        try:
            obj = json.loads(parts["json"].decode("utf-8-sig"))
        except UnicodeDecodeError as e:
            skips.append(Skip(src, "not utf-8", f"{key}.json: {utf8_error(parts['json'], e)}"))
            return
        except json.JSONDecodeError as e:
            skips.append(Skip(src, "bad json", str(e)))
            return
    if "txt" in parts and "caption" not in obj and "captions" not in obj:
        obj = dict(obj) if isinstance(obj, dict) else {}
        try:
            obj["caption"] = parts["txt"].decode("utf-8-sig")
        except UnicodeDecodeError as e:
            skips.append(Skip(src, "not utf-8", f"{key}.txt: {utf8_error(parts['txt'], e)}"))
            return
    obj = dict(obj) if isinstance(obj, dict) else obj
    if isinstance(obj, dict):
        obj.setdefault("split", split)
    rec = _record_from_obj(obj, src, skips)
    if rec is not None:
        rec.path, rec.span = shard_path, parts[image_ext]
        yield rec


# -- images -----------------------------------------------------------------------------------


def check_image(args) -> tuple[bytes | None, str, str]:
    """(path, (offset, size) | None, max_side, max_pixels) -> (RGB bytes | None, reason, detail).

    Runs in the worker processes; a span reads the image from inside a tar shard.
    """
    path, span, max_side, max_pixels = args
    # PIL's own decompression-bomb check warns on stderr above its limit and raises at twice
    # it, both at Image.open, before our check: off while ours (on the header) is the one limit.
    pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        return _check_image(path, span, max_side, max_pixels)
    except UnidentifiedImageError as e:
        return None, "not an image", str(e)
    except (OSError, SyntaxError, ValueError) as e:
        return None, "unreadable image", f"{type(e).__name__}: {e}"
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit


def _check_image(path, span, max_side, max_pixels) -> tuple[bytes | None, str, str]:
    if not os.path.exists(path):
        return None, "missing file", path
    with open(path, "rb") as f:
        if span is not None:
            f.seek(span[0])
        data = f.read(span[1]) if span is not None else f.read()
    if not data:
        return None, "empty file", path or ""
    img = Image.open(io.BytesIO(data))  # lazy: reads the header, decodes nothing yet
    fmt = img.format
    w, h = img.size
    if w < 1 or h < 1:
        return None, "not an image", f"size {w}x{h}"
    if w * h > max_pixels:
        return None, "too many pixels", f"{w}x{h} = {w * h} pixels > --max-pixels {max_pixels}"
    img.load()  # a full decode: truncated files fail here
    # Cameras store the sensor's pixels plus an EXIF orientation for viewers to apply; the
    # training decoders ignore EXIF, so the stored pixels themselves must be upright.
    transpose = img.getexif().get(ExifTags.Base.Orientation, 1) in range(2, 9)
    if transpose:
        img = ImageOps.exif_transpose(img)
        w, h = img.size
    resize = max_side is not None and max(w, h) > max_side
    if fmt in ("JPEG", "PNG") and img.mode == "RGB" and not resize and not transpose:
        return data, "", ""
    img = to_rgb(img)
    if resize:
        s = max_side / max(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC)
    out = io.BytesIO()
    # No exif=: the copy carries no orientation to reapply.
    img.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue(), "", ""


# -- writing ----------------------------------------------------------------------------------


def _builder_class(
    name: str,
    label_names: list[str] | None,
    splits: list[str],
    gen_fn,
    video_frames: int | None = None,
):
    """The tfds builder of a prepared dataset: an `image` feature, or with `video_frames` T a
    `video` feature of T JPEG frames (a Sequence of Image: tfds' Video feature needs
    TensorFlow to encode and decode)."""
    import tensorflow_datasets as tfds

    if video_frames is None:
        media = {"image": tfds.features.Image()}
    else:
        frame = tfds.features.Image(encoding_format="jpeg")
        media = {"video": tfds.features.Sequence(frame, length=video_frames)}
    feats = {
        **media,
        "captions": tfds.features.Sequence(tfds.features.Text()),
        "langs": tfds.features.Sequence(tfds.features.Text()),
        "id": tfds.features.Text(),
    }
    if label_names is not None:
        feats["label"] = tfds.features.ClassLabel(names=label_names)

    class PreparedDataset(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version(VERSION)
        # No source-code path: tfds would otherwise look for checksum files next to this
        # module (and, to do so, import the optional importlib_resources).
        code_path = None
        url_infos = None

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                description="Prepared by `vljax prepare` from local files.",
                features=tfds.features.FeaturesDict(feats),
            )

        def _split_generators(self, dl_manager):
            return {s: self._generate_examples(s) for s in splits}

        def _generate_examples(self, split):
            yield from gen_fn(split)

    PreparedDataset.name = name
    return PreparedDataset


def check_options(
    name: str,
    data_dir: str,
    overwrite: bool = False,
    max_side: int | None = None,
    max_pixels: int = MAX_PIXELS,
    max_caption_chars: int = MAX_CAPTION_CHARS,
    workers: int = 0,
) -> None:
    """Raises ConfigError for an option prepare cannot use (before any input is listed)."""
    if not name.isidentifier() or name.lower() != name:
        raise ConfigError(
            f"--name must be a lower-case identifier like 'my_pairs', got {name!r}; "
            "use letters, digits and '_'"
        )
    final = os.path.join(os.path.abspath(data_dir), name)
    if os.path.exists(final) and not overwrite:
        raise ConfigError(
            f"{final} exists; pass --overwrite to replace it, or choose another --name"
        )
    for flag, value in [
        ("--max-side", max_side),
        ("--max-pixels", max_pixels),
        ("--max-caption-chars", max_caption_chars),
    ]:
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be a positive number, got {value}")
    if workers < 0:
        raise ConfigError(
            f"--workers must be 0 (check images in this process) or more, got {workers}"
        )


def _no_examples(skips: list[Skip], split: str | None = None) -> DataError:
    if not skips:
        return DataError("no usable examples: the input lists no examples; check its path")
    where = "" if split is None else f" in split {split!r} (tfds cannot write an empty split)"
    reasons = Counter(s.reason for s in skips)
    lines = [
        f"no usable examples{where}: every input was skipped ({len(skips)}: "
        + ", ".join(f"{k} {v}" for k, v in reasons.most_common())
        + "); fix the inputs, the first ones:"
    ]
    lines += [f"  {s.source}: {s.reason} {s.detail}" for s in skips[:5]]
    return DataError("\n".join(lines))


def prepare(
    records: Sequence[Record],
    name: str,
    data_dir: str,
    skips: list[Skip],
    max_side: int | None = None,
    workers: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    max_pixels: int = MAX_PIXELS,
    max_caption_chars: int = MAX_CAPTION_CHARS,
    video: VideoOptions | None = None,
) -> Report:
    """Check/convert the records' images (with `video`: decode their videos' frames) and write
    DIR/NAME atomically; returns the report."""
    check_options(name, data_dir, overwrite, max_side, max_pixels, max_caption_chars, workers)
    if video is not None:
        video.check()
    data_dir = os.path.abspath(data_dir)
    final = os.path.join(data_dir, name)
    os.makedirs(data_dir, exist_ok=True)
    report = Report(skipped=skips, max_caption_chars=max_caption_chars)
    by_split: dict[str, list[Record]] = {}
    for r in records:
        by_split.setdefault(r.split, []).append(r)
    labels = sorted({r.label for r in records if r.label is not None})
    label_names = labels or None
    total = sum(len(v) for v in by_split.values())
    tmp = tempfile.mkdtemp(prefix=f".{name}.incomplete-", dir=data_dir)
    pool = mp.get_context("spawn").Pool(workers) if workers > 0 else None
    bar = _Progress(total, enabled=progress)

    started = []  # splits in the order tfds writes them

    def gen(split):
        started.append(split)
        recs = by_split[split]
        if video is None:
            check, key, chunk = check_image, "image", 8
            args = ((r.path, r.span, max_side, max_pixels) for r in recs)
        else:  # a clip takes far longer than an image: one per task keeps the workers even
            check, key, chunk = check_video, "video", 1
            args = ((r.path, r.source, video, max_pixels) for r in recs)
        results = pool.imap(check, args, chunksize=chunk) if pool else map(check, args)
        for i, (r, (data, reason, detail)) in enumerate(zip(recs, results, strict=True)):
            bar.advance()
            if data is None:
                skips.append(Skip(r.source, reason, detail))
                continue
            report.written[split] += 1
            captions = [truncate_caption(t, max_caption_chars) for _, t in r.captions]
            report.truncated += sum(len(t) > max_caption_chars for _, t in r.captions)
            ex = dict(
                captions=captions,
                langs=[lang for lang, _ in r.captions],
                id=r.source,
            )
            ex[key] = data
            if label_names is not None:
                ex["label"] = -1 if r.label is None else labels.index(r.label)
            yield i, ex

    try:
        splits = sorted(by_split)
        if not splits:
            raise _no_examples(skips)
        frames = None if video is None else video.frames
        builder_cls = _builder_class(name, label_names, splits, gen, frames)
        builder = builder_cls(data_dir=tmp, file_format="array_record")
        try:
            builder.download_and_prepare()
        except AssertionError as e:
            # tfds cannot write an empty split, and which one is empty is known only once
            # its images are checked.
            if "No examples were yielded" not in str(e):
                raise
            if len(splits) == 1:
                raise _no_examples(skips) from None
            sources = {r.source for r in by_split[started[-1]]}
            split_skips = [s for s in skips if s.source in sources]
            raise _no_examples(split_skips, started[-1]) from None
        # backslashreplace: a source holding a non-UTF-8 file name is still listed.
        skipped_path = os.path.join(tmp, name, "skipped.jsonl")
        with open(skipped_path, "w", encoding="utf-8", errors="backslashreplace") as f:
            for s in skips:
                f.write(s.to_json() + "\n")
        shutil.rmtree(os.path.join(tmp, "downloads"), ignore_errors=True)
        old = None
        if os.path.exists(final):
            old = os.path.join(data_dir, f".{name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(final, old)
        os.rename(os.path.join(tmp, name), final)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()
        shutil.rmtree(tmp, ignore_errors=True)
    return report


class _Progress:
    """A rich progress bar with examples/s (plain text when rich is off)."""

    def __init__(self, total: int, enabled: bool):
        self.n, self.total, self.t0 = 0, total, time.time()
        self._p = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(
                TextColumn("prepare"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} ex/s"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._task = self._p.add_task("prepare", total=total, rate="-")
            self._p.start()

    def advance(self):
        self.n += 1
        if self._p is not None:
            rate = self.n / max(time.time() - self.t0, 1e-9)
            self._p.update(self._task, advance=1, rate=f"{rate:.0f}")

    def close(self):
        if self._p is not None:
            self._p.stop()
            self._p = None


def summary(report: Report, name: str, data_dir: str, seconds: float) -> str:
    n = sum(report.written.values())
    lines = [
        f"wrote {n} examples to {os.path.join(data_dir, name)} in {seconds:.1f} s "
        f"({n / max(seconds, 1e-9):.0f} examples/s): "
        + ", ".join(f"{s}={c}" for s, c in sorted(report.written.items()))
    ]
    if report.skipped:
        reasons = Counter(s.reason for s in report.skipped)
        lines.append(
            f"skipped {len(report.skipped)}: "
            + ", ".join(f"{k} {v}" for k, v in reasons.most_common())
            + f" (list in {os.path.join(data_dir, name, 'skipped.jsonl')})"
        )
    else:
        lines.append("skipped 0")
    if report.truncated:
        lines.append(
            f"truncated {report.truncated} captions to --max-caption-chars "
            f"{report.max_caption_chars} (the examples are kept)"
        )
    return "\n".join(lines)


def _video_options(args) -> VideoOptions | None:
    """--from-video-manifest's options, checked (and PyAV's presence); None for image inputs,
    which refuse the video flags."""
    given = {
        flag: value
        for flag, value in [
            ("--frames", args.frames),
            ("--sampling", args.sampling),
            ("--fps", args.fps),
            ("--frame-size", args.frame_size),
            ("--seed", args.seed),
        ]
        if value is not None
    }
    if not args.from_video_manifest:
        if given:
            raise ConfigError(f"{', '.join(given)} go with --from-video-manifest")
        return None
    if args.max_side is not None:
        raise ConfigError(
            "--max-side goes with image inputs; video frames are sized by --frame-size "
            f"(shorter side, default {DEFAULT_FRAME_SIZE})"
        )
    require_extra("video", "vljax prepare --from-video-manifest")
    defaults = VideoOptions()
    video = VideoOptions(
        frames=defaults.frames if args.frames is None else args.frames,
        sampling=args.sampling or defaults.sampling,
        fps=args.fps,
        frame_size=defaults.frame_size if args.frame_size is None else args.frame_size,
        seed=defaults.seed if args.seed is None else args.seed,
    )
    video.check()
    return video


def cli(argv: Sequence[str] | None = None) -> int:
    """`vljax prepare`; a problem the user must fix raises a vljax.errors UserError, which
    `vljax` prints without a traceback."""
    p = argparse.ArgumentParser(
        prog="vljax prepare",
        description="Write a tfds ArrayRecord dataset from local image-text files.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="JSONL file, one example per line")
    src.add_argument("--from-folder", help="folder of images with sidecar .txt captions")
    src.add_argument("--from-webdataset", nargs="+", help="tar shards (paths or globs)")
    src.add_argument(
        "--from-imagenet", help="ImageNet validation folder (class folders n01440764/ ...)"
    )
    src.add_argument(
        "--from-karpathy", help="Karpathy's dataset_coco.json / dataset_flickr30k.json"
    )
    src.add_argument("--from-xm3600", help="XM3600's captions.jsonl (vljax/data/xm3600.py)")
    src.add_argument(
        "--from-video-manifest",
        help='JSONL file, one clip per line, with "video" in place of "image" (needs PyAV)',
    )
    p.add_argument(
        "--images", help="--from-karpathy / --from-xm3600: the folder that holds the images"
    )
    p.add_argument(
        "--languages", help="--from-xm3600: comma-separated language codes (default all 36)"
    )
    p.add_argument("--name", required=True, help="dataset name (lower-case identifier)")
    p.add_argument("--data-dir", required=True, help="tfds data dir to write NAME into")
    p.add_argument("--max-side", type=int, default=None, help="downscale larger images")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_PIXELS,
        help=f"skip images with more pixels, before decoding them (default {MAX_PIXELS})",
    )
    p.add_argument(
        "--max-caption-chars",
        type=int,
        default=MAX_CAPTION_CHARS,
        help=f"cut longer captions, counted in the summary (default {MAX_CAPTION_CHARS})",
    )
    p.add_argument("--workers", type=int, default=0, help="image-checking processes")
    p.add_argument(
        "--split",
        default=None,
        help="split for folder/webdataset inputs (default train; --from-imagenet: test); "
        "--from-karpathy: comma-separated Karpathy splits to write (default test)",
    )
    p.add_argument("--label-from-dir", action="store_true", help="folder name = class label")
    p.add_argument(
        "--labels",
        help="--from-imagenet, flat layout: ILSVRC2012_validation_ground_truth.txt (meta.mat "
        "beside it) or one wnid per image",
    )
    # Video options: None when not given, so that one given without a video input is refused.
    p.add_argument("--frames", type=int, help=f"video: frames per clip (default {DEFAULT_FRAMES})")
    p.add_argument(
        "--sampling",
        help=f"video: which frames, {expected(VIDEO_SAMPLINGS)} (default uniform)",
    )
    p.add_argument("--fps", type=float, help="video, --sampling fps: frames per second to take")
    p.add_argument(
        "--frame-size",
        type=int,
        help=f"video: downscale frames to this shorter side (default {DEFAULT_FRAME_SIZE})",
    )
    p.add_argument("--seed", type=int, help="video, --sampling random_segment (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    options = dict(
        max_side=args.max_side,
        max_pixels=args.max_pixels,
        max_caption_chars=args.max_caption_chars,
        workers=args.workers,
    )
    # Refused before the inputs are listed, which can take minutes for a large manifest.
    check_options(args.name, args.data_dir, args.overwrite, **options)
    if args.labels and not args.from_imagenet:
        raise ConfigError("--labels goes with --from-imagenet (its flat layout)")
    if args.images and not (args.from_karpathy or args.from_xm3600):
        raise ConfigError(
            "--images goes with --from-karpathy or --from-xm3600; the other inputs name images"
        )
    if args.languages and not args.from_xm3600:
        raise ConfigError("--languages goes with --from-xm3600")
    video = _video_options(args)
    missing = None  # --from-xm3600: images without captions in each language
    skips: list[Skip] = []
    t0 = time.time()
    if args.from_karpathy:
        splits = parse_splits(args.split)
        records = karpathy_records(args.from_karpathy, args.images, splits, skips)
    elif args.from_xm3600:
        missing = Counter()
        languages = parse_languages(args.languages)
        records = xm3600_records(args.from_xm3600, args.images, languages, skips, missing)
    elif args.from_imagenet:
        records = imagenet_records(args.from_imagenet, args.labels, args.split or "test", skips)
    elif args.manifest or args.from_video_manifest:
        manifest = args.manifest or args.from_video_manifest
        if not os.path.isfile(manifest):
            raise DataError(
                f"manifest {manifest!r} does not exist or is not a file; pass the path "
                "of a JSONL file with one example per line"
            )
        media = "image" if args.manifest else "video"
        records = list(manifest_records(manifest, skips, media))
    elif args.from_folder:
        if not os.path.isdir(args.from_folder):
            raise DataError(
                f"folder {args.from_folder!r} does not exist; pass the folder that holds the "
                "images and their .txt captions"
            )
        records = list(
            folder_records(args.from_folder, skips, args.split or "train", args.label_from_dir)
        )
    else:
        records = list(webdataset_records(args.from_webdataset, skips, args.split or "train"))
    report = prepare(
        records,
        args.name,
        args.data_dir,
        skips,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        video=video,
        **options,
    )
    print(summary(report, args.name, os.path.abspath(args.data_dir), time.time() - t0))
    if missing is not None:
        print(missing_summary(missing))
    return 0
