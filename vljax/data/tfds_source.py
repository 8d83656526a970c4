"""Prepared tfds datasets as grain sources, caption iterators and eval sets.

`TfdsSource(name, split, data_dir)` is a picklable grain RandomAccessDataSource over
`tfds.data_source(name, data_dir=...)` (ArrayRecord, random access, no TensorFlow). Images are
left encoded (decoded in the pipeline's transform, in the worker processes), captions come
back as `[(lang, text)]`, and `label` as int (-1 when absent). A set written by `vljax prepare
--from-video-manifest` (its `media` is "video") gives `video`, its clip's stored frames as a
list of JPEG bytes, in place of `image`; `resampled(frames, count)` takes `count` of them
evenly, for a model whose clip length differs from the stored one.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.read_only_builder import builder_from_directory

from vljax.data import preprocess
from vljax.data.captions import caption_candidates
from vljax.errors import DataError


def parse_tfds_spec(spec: str, default_split: str = "train") -> tuple[str, str]:
    """'tfds:NAME[:SPLIT]' -> (NAME, SPLIT)."""
    if not spec.startswith("tfds:"):
        raise DataError(f"expected 'tfds:NAME[:SPLIT]', got {spec!r}")
    parts = spec[len("tfds:") :].split(":")
    if not parts[0] or len(parts) > 2:
        raise DataError(f"expected 'tfds:NAME[:SPLIT]', got {spec!r}")
    return parts[0], (parts[1] if len(parts) == 2 and parts[1] else default_split)


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def open_builder(name: str, data_dir: str | None):
    if not data_dir:
        raise DataError(
            f"dataset tfds:{name} needs config.data.data_dir (the --data-dir given to "
            "`vljax prepare`)"
        )
    if not os.path.isdir(os.path.join(data_dir, name)):
        raise FileNotFoundError(
            f"no prepared dataset {name!r} in {data_dir!r}; create it with `vljax prepare "
            f"--manifest FILE.jsonl --name {name} --data-dir {data_dir}` (nothing is "
            "downloaded at run time)"
        )
    # From the prepared files alone (DIR/NAME/VERSION/dataset_info.json): tfds.builder would
    # pick a catalog builder of the same name (coco, imagenet2012, ...), which needs
    # TensorFlow and that catalog entry's own files.
    root = os.path.join(data_dir, name)
    versions = [
        d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "dataset_info.json"))
    ]
    if not versions:
        raise FileNotFoundError(
            f"{root} holds no prepared version (no VERSION/dataset_info.json); prepare it "
            f"again with `vljax prepare ... --name {name} --data-dir {data_dir} --overwrite`"
        )
    latest = max(versions, key=lambda v: tuple(int(x) for x in v.split(".") if x.isdigit()))
    return builder_from_directory(os.path.join(root, latest))


class SkipFrameDecoding(tfds.decode.SkipDecoding):
    """tfds' SkipDecoding for a Sequence of Images (a prepared clip's frames): the frames stay
    JPEG bytes. tfds' own SkipDecoding has no numpy form for a sequence feature."""

    def decode_batch_example_np(self, serialized_example):
        return list(serialized_example)


def resampled(frames, count: int) -> list:
    """`count` of a clip's stored frames, in order: the centre frame of each of `count` equal
    segments, prepare's `uniform` sampling (vljax/data/video_frames.py) applied to the stored
    frames. Fewer stored frames than `count` are each repeated evenly (4 -> 8: 0, 0, 1, 1, 2,
    2, 3, 3), so a clip keeps its time span whatever the model's clip length."""
    n = len(frames)
    if n == count:
        return list(frames)
    if n == 0:
        raise DataError("a prepared clip holds no frames; prepare the dataset again")
    return [frames[(2 * i + 1) * n // (2 * count)] for i in range(count)]


class TfdsSource:
    """grain RandomAccessDataSource of dict(image=bytes, captions=[(lang, text)], label=int),
    with video=[bytes per frame] in place of image for a prepared video set."""

    def __init__(self, name: str, split: str = "train", data_dir: str | None = None):
        self.name, self.split = name, split
        self.data_dir = os.path.abspath(data_dir) if data_dir else data_dir
        builder = open_builder(name, self.data_dir)
        splits = builder.info.splits
        if split not in splits:
            raise DataError(
                f"tfds:{name} has splits {sorted(splits)}, not {split!r}; use tfds:{name}:SPLIT"
            )
        self._len = int(splits[split].num_examples)
        feats = builder.info.features
        self.classnames = list(feats["label"].names) if "label" in feats else None
        self.media = "video" if "video" in feats else "image"
        self._ds = None

    def _source(self):
        if self._ds is None:
            skip = SkipFrameDecoding() if self.media == "video" else tfds.decode.SkipDecoding()
            self._ds = open_builder(self.name, self.data_dir).as_data_source(
                split=self.split, decoders={self.media: skip}
            )
        return self._ds

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_ds"} | {"_ds": None}

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"TfdsSource(name={self.name!r}, split={self.split!r}, n={self._len})"

    def __getitem__(self, index: int) -> dict:
        ex = self._source()[int(index)]
        caps = [_text(c) for c in ex["captions"]]
        langs = [_text(x) for x in ex["langs"]]
        return {
            self.media: ex[self.media],
            "captions": list(zip(langs, caps, strict=True)),
            "label": int(ex.get("label", -1)),
        }


def iter_captions(spec: str, data_dir, langs, limit: int):
    """Captions of a prepared split in the given languages (None = any), at most limit."""
    name, split = parse_tfds_spec(spec)
    src = TfdsSource(name, split, data_dir)
    n = 0
    for i in range(len(src)):
        for text in caption_candidates(src[i]["captions"], langs):
            if n >= limit:
                return
            n += 1
            yield text


def clip_length(config, dataset: str) -> int:
    """T, the frames of the clips a video eval set holds: `config.model.video.frames`."""
    if "video" not in config.model:
        raise DataError(
            f"{dataset} is a video set and config.model has no video.frames (the clip length); "
            "evaluate a video method's run (configs/video_clip.py)"
        )
    return int(config.model.video.frames)


def load_tfds_eval(dataset: str, entry: dict, config, image_size: int, lang: str) -> dict:
    """An eval set from a prepared split; see evalsets.load_eval_set. A video set (prepared
    with --from-video-manifest) holds `videos`, uint8 [N, T, S, S, 3] with T =
    model.video.frames (the stored frames `resampled` to T), in place of `images`."""
    name, split = parse_tfds_spec(dataset, default_split="test")
    src = TfdsSource(name, split, config.data.data_dir)
    frames = clip_length(config, dataset) if src.media == "video" else None
    # The integrator's eval runner may pass only the dataset string: without a "type", a
    # labelled split is read as a zero-shot set, an unlabelled one as a retrieval set.
    kind = entry.get("type") or ("zeroshot" if src.classnames is not None else "retrieval")
    labelled = kind in ("zeroshot", "fewshot")
    n = min(len(src), int(entry.get("size") or len(src)))
    # A multilingual retrieval entry (`langs`) keeps every image with a caption in any of them.
    langs = _eval_langs(entry.get("langs"), src, n) if not labelled else None
    by_lang = {lang: [] for lang in langs or ()}
    images, captions, all_captions, labels = [], [], [], []
    for i in range(n):
        ex = src[i]
        if langs:
            per_lang = [caption_candidates(ex["captions"], (la, "")) for la in by_lang]
            if not any(per_lang):
                continue
            for texts, cands in zip(by_lang.values(), per_lang, strict=True):
                texts.append(cands)
        if labelled:
            if ex["label"] < 0:
                continue
            cands = caption_candidates(ex["captions"], (lang, "")) or [""]
        else:
            # Every caption in the eval's language (untagged captions count as any): COCO
            # and Flickr30k retrieval rank all 5 of each image's captions.
            cands = caption_candidates(ex["captions"], (lang, ""))
            if not cands and not langs:
                continue
        if frames is None:
            images.append(preprocess.inference_image(ex["image"], image_size))
        else:  # each frame as an image is, then T of them
            clip = resampled(ex["video"], frames)
            images.append(np.stack([preprocess.inference_image(f, image_size) for f in clip]))
        captions.append(cands[0] if cands else "")
        all_captions.append(cands)
        labels.append(ex["label"])
    if not images:
        raise DataError(
            f"{dataset} has no usable examples for a {kind} eval"
            + (" (no labelled examples)" if labelled else f" (no {lang!r} captions)")
        )
    if langs and not any(all_captions):
        raise DataError(
            f"{dataset} has no {lang!r} captions for the eval's main keys; set the entry's "
            f"lang to one of its languages ({', '.join(langs)})"
        )
    has_labels = src.classnames is not None and min(labels) >= 0
    out = {
        "images" if frames is None else "videos": np.stack(images).astype(np.uint8),
        "captions": captions,
        "all_captions": all_captions,
        "labels": np.asarray(labels, np.int32) if has_labels else None,
        "classnames": src.classnames,
        "templates": None,
    }
    if langs:
        out["captions_by_lang"] = by_lang
    return out


def _eval_langs(value, src: TfdsSource, n: int) -> tuple[str, ...] | None:
    """A retrieval entry's `langs` (a list, a comma-separated string, or "all": every language
    of the split's first n examples, sorted); each must have captions in the split."""
    if not value:
        return None
    present = sorted({lang for i in range(n) for lang, _ in src[i]["captions"] if lang})
    if value == "all":
        return tuple(present)
    langs = tuple(x.strip() for x in value.split(",")) if isinstance(value, str) else value
    unknown = [lang for lang in langs if lang not in present]
    if unknown:
        raise DataError(
            f"tfds:{src.name}:{src.split} has no captions in {', '.join(unknown)} (langs of "
            f"the eval); its languages are {', '.join(present) or 'none (untagged captions)'}: "
            'pick from those, or langs="all"'
        )
    return tuple(dict.fromkeys(langs))
