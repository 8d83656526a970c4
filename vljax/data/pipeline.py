"""The grain training pipeline: source -> seeded shuffle -> this process's rows of each global
batch -> decode, augment, pick a caption, tokenise -> batch. Checkpointable.

```python
it = make_train_iterator(config, tokenizer, seed, rows=((start, stop), ...))  # default B / P
batch = next(it)   # dict(image=uint8 [b, H, W, 3], tokens=int32 [b, L]), b = rows held
state = it.get_state()   # a JSON-serialisable dict; store it with every checkpoint
it.set_state(state)      # on a fresh iterator: the following batches are bit-identical
```

Sources (`config.data.train.dataset`): `"shapes"` (procedural, `config.data.train.size`
examples, seeded by `config.seed`), `"shapes_long"` (2 x 2 grids with long and short
captions, Long-CLIP's demo), `"shapes_long_sentences"` (the same grids captioned one sentence
per shape), `"shapes_symile"` (image, shift caption and a third modality that only the
two together determine: Symile's demo), `"moving_shapes"` (video clips of
`config.model.video.frames` frames with en/zh captions that need the frames in order, batch
field `video`: vljax/data/moving_shapes.py), `"tfds:NAME[:SPLIT]"` (a prepared dataset in
`config.data.data_dir`; one prepared with --from-video-manifest gives clips), or a mixture:
`{"tfds:a": 0.7, "tfds:b": 0.3}` (a dict, when the config field is not locked to str),
`"tfds:a=0.7,tfds:b=0.3"` or the JSON string `'{"tfds:a": 0.7, "tfds:b": 0.3}'` (these two
work as --config overrides).

Video methods (batch field `video`, uint8 [B, T, H, W, 3], T = `config.model.video.frames`)
read clips: a prepared clip's stored frames are decoded from JPEG and `resampled` evenly to T
when their count differs (vljax/data/tfds_source.py). In a mixture of clips and images an
image is a clip of T copies of itself (one augmentation), so the batch keeps one static shape,
with `video_frames` = 1 (its real frames), so that every temporal module embeds it exactly as
the 1-frame video (vljax/models/video_clip.py). A dataset with no clips for a video method, or with
clips for an image method, is refused before any batch.

The data order does not depend on the topology: grain's `IndexSampler` (unsharded, shuffled
with `seed`, repeating forever) numbers the examples of one global stream, the global batch
at step t is its entries [t * B, (t + 1) * B), and each process loads only its rows of that
batch (`GlobalBatchSampler`; the trainer passes the [start, stop) blocks its devices hold,
`vljax.sharding.process_rows`). The per-example transform's randomness is grain's
per-record seed of the global entry. So 1 process x 8 devices, 2 x 4 and any worker count
see the same examples with the same augmentation at every step, and the iterator's state is
the number of batches consumed: a checkpoint resumes on another process count exactly.
`config.data.num_workers` decoding processes (0 = in this process), each keeping
`config.data.prefetch` batches ready.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Iterator

import grain.python as grain
import jax
import numpy as np

from vljax.choices import MULTI_CAPTIONS, expected
from vljax.data import preprocess
from vljax.data.captions import (
    caption_candidates,
    caption_per_language,
    languages,
    sampled_sentences,
)
from vljax.data.mixture import MixtureSource
from vljax.data.moving_shapes import MovingShapesSource
from vljax.data.shapes import ShapesSource
from vljax.data.shapes_long import ShapesLongSource
from vljax.data.shapes_symile import ShapesSymileSource
from vljax.data.tfds_source import TfdsSource, iter_captions, parse_tfds_spec, resampled
from vljax.data.third_modality import ThirdModality
from vljax.errors import ConfigError, DataError
from vljax.token_ids import PAD_ID

_STATE_VERSION = 2  # 2: {batches, identity}; 1: grain's per-process loader state
# What a training batch can hold: uint8 images [B, H, W, 3], int32 tokens [B, max_len] and,
# for methods that ask for them, the tokens of each example's short caption (Long-CLIP) and
# int32 multi_tokens [B, K, max_len]: K captions per example (multi_caption;
# data.train.multi_captions), an absent one an all-PAD row. Symile's third modality:
# int32 third_tokens [B, model.third.max_len] (vljax/data/third_modality.py). Video methods:
# uint8 video [B, T, H, W, 3] (T = model.video.frames) in place of image, each clip augmented
# as one image (preprocess.train_video), an image example as T copies of itself; the step
# scales both on device (preprocess.PIXEL_FIELDS). int32 video_frames [B]: how many of a
# clip's frames are real, T for a clip and 1 for an image example (the temporal modules
# attend to and average the real frames only: vljax/models/video_clip.py).
BATCH_FIELDS = (
    "image", "tokens", "short_tokens", "multi_tokens", "third_tokens", "video", "video_frames"
)  # fmt: skip
# The shapes_long grids captioned one sentence per shape (vljax/data/shapes_long.py).
SENTENCE_SPECS = ("shapes_long_sentences", "shapes_long_sentences:train")
MOVING_SHAPES_SPECS = ("moving_shapes", "moving_shapes:train")


def augment_for(config) -> preprocess.Augment:
    """Augmentation parameters: `config.data.augment.*`, where None means the dataset's
    default (a mixture's when all its parts share it)."""
    augment_config = config.data.augment
    d = preprocess.Augment()
    spec = config.data.train.dataset
    names = parse_mixture(spec) or {spec: 1.0}
    if all(name in ("shapes", "shapes:train", *MOVING_SHAPES_SPECS) for name in names):
        # The generator already varies position and size; a resampled crop would only blur
        # the edges that tell a 12 px circle from a square.
        d = preprocess.Augment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    given = {
        "crop_scale": augment_config.crop_scale,
        "crop_ratio": augment_config.crop_ratio,
        "brightness": augment_config.brightness,
        "contrast": augment_config.contrast,
        "flip": augment_config.flip,
    }
    return dataclasses.replace(d, **{k: v for k, v in given.items() if v is not None})


class TrainTransform(grain.RandomMapTransform):
    """Raw example -> dict of `fields` (default: image=uint8 [S, S, 3], tokens=int32 [L]).

    Picks one caption (seeded) among those in the configured languages, decodes the image
    (encoded bytes or a uint8 array), augments it keeping every caption true, tokenises.
    `short_tokens` tokenises the example's short caption in the same language
    (`short_captions`: {lang: str}). `multi_tokens` (int32 [K, L]) tokenises K captions of
    the example, by `multi_captions`: "languages" = one per language of `langs`, in order
    (K = len(langs)); "sentences" = up to K = `captions_per_example` sentences of the picked
    caption, sampled with the example's generator. An absent caption is an all-PAD row.
    `video` (uint8 [T, S, S, 3], T = `frames`): the example's clip, its frames resampled to T
    (`tfds_source.resampled`) and augmented alike, or its image T times; `video_frames`
    (int32): its real frames, T for a clip and 1 for an image.
    """

    def __init__(
        self,
        tokenizer,
        image_size: int,
        max_len: int,
        langs,
        aug,
        fields=(),
        multi_captions: str = "languages",
        captions_per_example: int | None = None,
        frames: int | None = None,
    ):
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.max_len = max_len
        self.langs = langs
        self.aug = aug
        self.fields = tuple(fields) or ("image", "tokens")
        self.frames = frames  # T of batch field video
        if "video" in self.fields and not frames:
            raise ValueError("TrainTransform: batch field video needs frames=T (clip length)")
        self.multi_captions = multi_captions
        self.multi_count = None  # K, when the fields ask for multi_tokens
        if "multi_tokens" in self.fields:
            self.multi_count = multi_caption_count(multi_captions, langs, captions_per_example)

    def random_map(self, element, rng: np.random.Generator):
        cands = caption_candidates(element["captions"], self.langs)
        if not cands:
            raise DataError(
                f"an example has no caption in languages {self.langs}; choose "
                "config.data.train.lang among the dataset's languages (or 'any')"
            )
        text = cands[int(rng.integers(len(cands)))] if len(cands) > 1 else cands[0]
        multi = [] if self.multi_count is None else self._multi_captions(element, text, rng)
        # A horizontal flip only when no caption of the example names left or right.
        said = [text, *(t for t in multi if t is not None)]
        flippable = not any(preprocess.mentions_left_right(t) for t in said)
        if "video" in self.fields:
            out = dict(video=self._video(element, rng, flippable))
            if "video_frames" in self.fields:
                out["video_frames"] = np.int32(self.frames if "video" in element else 1)
        else:
            out = dict(image=self._image(element["image"], rng, flippable))
        if "tokens" in self.fields:
            out["tokens"] = self.tokenizer.encode([text], self.max_len)[0]
        if "short_tokens" in self.fields:
            short = _short_caption(element, text)
            out["short_tokens"] = self.tokenizer.encode([short], self.max_len)[0]
        if self.multi_count is not None:
            out["multi_tokens"] = self._multi_tokens(multi)
        return out

    def _image(self, img, rng, flippable) -> np.ndarray:
        """uint8 [S, S, 3]: an image (encoded bytes or a uint8 array), augmented."""
        if isinstance(img, bytes | bytearray):
            img = preprocess.decode_image(bytes(img), draft_size=self.image_size)
        return preprocess.train_image(img, rng, self.image_size, self.aug, flippable)

    def _video(self, element, rng, flippable) -> np.ndarray:
        """uint8 [T, S, S, 3]: the example's clip, every frame augmented alike; an image
        example (a mixture's image part) is T copies of its augmented image, a still clip."""
        if "video" not in element:
            still = self._image(element["image"], rng, flippable)
            return np.broadcast_to(still, (self.frames, *still.shape))
        frames = resampled(element["video"], self.frames)
        frames = [
            preprocess.decode_image(bytes(f), draft_size=self.image_size)
            if isinstance(f, bytes | bytearray)
            else f
            for f in frames
        ]
        return preprocess.train_video(frames, rng, self.image_size, self.aug, flippable)

    def _multi_captions(self, element, text, rng) -> list[str | None]:
        """The example's K caption slots (None = absent), see the class docstring."""
        if self.multi_captions == "languages":
            slots = caption_per_language(element["captions"], self.langs, rng)
        else:
            slots = sampled_sentences(text, self.multi_count, rng)
            if not slots:
                raise DataError(
                    f"data.train.multi_captions='sentences': the caption {text!r} has no "
                    "sentence; drop such examples from the dataset or use "
                    "data.train.multi_captions='languages'"
                )
        return slots + [None] * (self.multi_count - len(slots))

    def _multi_tokens(self, slots) -> np.ndarray:
        """int32 [K, L]: each caption's tokens, all-PAD rows for the absent ones."""
        rows = np.full((self.multi_count, self.max_len), PAD_ID, np.int32)
        present = [i for i, t in enumerate(slots) if t is not None]
        if present:
            texts = [slots[i] for i in present]
            rows[present] = self.tokenizer.encode(texts, self.max_len)
        return rows


def multi_caption_count(multi_captions, langs, captions_per_example) -> int:
    """K, the captions per example of batch field multi_tokens (see TrainTransform)."""
    if multi_captions == "languages":
        if not langs:
            raise ConfigError(
                "data.train.multi_captions='languages' takes one caption per language of "
                "data.train.lang, which names none ('any'); name them in order, e.g. "
                "--config.data.train.lang=en,zh"
            )
        return len(langs)
    if multi_captions == "sentences":
        k = captions_per_example
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(
                f"data.train.captions_per_example={k!r}: the sentences per example must be a "
                "positive int, e.g. --config.data.train.captions_per_example=4"
            )
        return k
    raise ConfigError(
        f"data.train.multi_captions={multi_captions!r}: expected {expected(MULTI_CAPTIONS)}"
    )


def _short_caption(element, text) -> str:
    """The short caption in the language of the picked (long) caption `text`."""
    shorts = element.get("short_captions")
    if not shorts:
        raise DataError(
            "the method needs a short caption per example (batch field short_tokens), and this "
            "dataset has none: use data.train.dataset='shapes_long' or a dataset whose examples "
            "carry short_captions"
        )
    for lang, long in element["captions"].items():
        if long == text or (not isinstance(long, str) and text in long):
            return shorts[lang]
    raise DataError(f"no short caption in the language of {text!r}")


def parse_mixture(spec):
    """{spec: weight} | ConfigDict | 'a=0.7,b=0.3' | JSON object string -> dict, else None."""
    if isinstance(spec, dict) or hasattr(spec, "to_dict"):
        return dict(spec.to_dict() if hasattr(spec, "to_dict") else spec)
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        try:
            return {str(k): float(v) for k, v in json.loads(spec).items()}
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
            raise DataError(f"mixture {spec!r} is not a JSON object of weights: {e}") from e
    if isinstance(spec, str) and "=" in spec:
        out = {}
        for part in spec.split(","):
            name, _, w = part.strip().rpartition("=")
            try:
                out[name] = float(w)
            except ValueError:
                raise DataError(f"mixture {spec!r}: write it as 'tfds:a=0.7,tfds:b=0.3'") from None
        return out
    return None


def source_media(source) -> set[str]:
    """What a source's examples hold: {"image"}, {"video"} or, for a mixture, both."""
    if isinstance(source, MixtureSource):
        return set().union(*(source_media(part) for part in source.parts))
    return {getattr(source, "media", "image")}  # the procedural image sources name none


def check_media(source, fields, spec) -> None:
    """Refuses a dataset with no clips for a video method (batch field video) and one with
    clips for an image method, naming what to use."""
    media = source_media(source)
    if "video" in fields and "video" not in media:
        raise DataError(
            f"the method needs video clips (batch field video), and data.train.dataset={spec!r} "
            "holds only images: use 'moving_shapes', a tfds set prepared with `vljax prepare "
            "--from-video-manifest`, or a mixture of one with images (which train as 1-frame "
            "videos)"
        )
    if "video" not in fields and "video" in media:
        raise DataError(
            f"data.train.dataset={spec!r} holds video clips, which only a video method reads "
            "(batch field video, e.g. configs/video_clip.py); train this method on images"
        )


def make_source(spec, config, split: str = "train"):
    """A grain RandomAccessDataSource for a dataset spec (str or {spec: weight})."""
    weights = parse_mixture(spec)
    if weights is not None:
        parts = {name: make_source(name, config, split) for name in weights}
        return MixtureSource(parts, weights, seed=int(config.seed))
    if not isinstance(spec, str):
        raise DataError(f"dataset spec must be a string or a dict of weights, got {spec!r}")
    if spec == "shapes" or spec == "shapes:train":
        return ShapesSource(
            "train",
            size=int(config.data.train.size),
            seed=int(config.seed),
            image_size=int(config.model.image.image_size),
        )
    if spec in ("shapes_long", "shapes_long:train", *SENTENCE_SPECS):
        return ShapesLongSource(
            "train",
            size=int(config.data.train.size),
            seed=int(config.seed),
            image_size=int(config.model.image.image_size),
            sentences=spec in SENTENCE_SPECS,
        )
    if spec in ("shapes_symile", "shapes_symile:train"):
        return ShapesSymileSource(
            "train",
            size=int(config.data.train.size),
            seed=int(config.seed),
            image_size=int(config.model.image.image_size),
        )
    if spec in MOVING_SHAPES_SPECS:
        return MovingShapesSource(
            "train",
            size=int(config.data.train.size),
            seed=int(config.seed),
            image_size=int(config.model.image.image_size),
            frames=int(config.model.video.frames),
        )
    if spec.startswith("tfds:"):
        name, sp = parse_tfds_spec(spec, default_split=split)
        return TfdsSource(name, sp, data_dir=config.data.data_dir)
    raise DataError(
        f"unknown dataset {spec!r}: use 'shapes', 'shapes_long', 'shapes_long_sentences', "
        "'shapes_symile', 'moving_shapes', 'tfds:NAME[:SPLIT]' (prepared with `vljax prepare`), "
        "or a mixture {'tfds:a': 0.7, 'tfds:b': 0.3}"
    )


class GlobalBatchSampler:
    """A grain sampler: this process's rows of the global batches of one unsharded `inner`
    IndexSampler, the same stream on every topology.

    `rows`: the process's rows of a global batch as sorted [start, stop) blocks; its local
    row j is the j-th of them. grain's DataLoader asks for local entries k = 0, 1, ... and
    batches them; with W worker processes, worker k % W takes entries k, k + W, ... and the
    loader's t-th batch is its worker's batch t // W. Local entry k is mapped to row j of
    global batch `first_batch + t`: entry (first_batch + t) * B + rows[j] of `inner`, whose
    record and per-record seed it takes.
    """

    def __init__(self, inner, global_batch: int, rows, workers: int, first_batch: int = 0):
        self._inner = inner
        self._global_batch = global_batch
        self._blocks = tuple((int(a), int(b)) for a, b in rows)
        self._rows = [r for a, b in self._blocks for r in range(a, b)]
        self._local_batch = len(self._rows)
        self._workers = max(workers, 1)
        self._first_batch = first_batch

    def __len__(self) -> int:
        return sys.maxsize

    def __repr__(self) -> str:
        return (
            f"GlobalBatchSampler({self._inner!r}, global_batch={self._global_batch}, "
            f"rows={list(self._blocks)}, "
            f"first_batch={self._first_batch})"
        )

    def global_entry(self, k: int) -> int:
        w, p = k % self._workers, k // self._workers
        m, j = divmod(p, self._local_batch)
        t = m * self._workers + w
        return (self._first_batch + t) * self._global_batch + self._rows[j]

    def __getitem__(self, k: int) -> grain.RecordMetadata:
        meta = self._inner[self.global_entry(k)]
        return grain.RecordMetadata(index=k, record_key=meta.record_key, rng=meta.rng)


class TrainIterator(Iterator):
    """Batches of the grain DataLoader `make_loader(first_batch)`. Its state is topology-free:
    the batches consumed, and what identifies the stream (global batch size, source, sampler),
    so that a different one is refused."""

    def __init__(self, make_loader, meta: dict):
        self._make_loader = make_loader
        self._meta = meta
        self._first = 0
        self._consumed = 0
        self._it = None  # built at the first batch, so that set_state starts no workers

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._it is None:
            self._it = iter(self._make_loader(self._first))
        batch = next(self._it)
        self._consumed += 1
        return batch

    def get_state(self) -> dict:
        return dict(version=_STATE_VERSION, batches=self._first + self._consumed, **self._meta)

    def set_state(self, state: dict) -> None:
        """Continues after `state`'s batches; on a fresh iterator, before its first batch."""
        if isinstance(state, bytes | str):
            state = json.loads(state)
        if self._it is not None:
            raise RuntimeError("TrainIterator.set_state must come before the first batch")
        if state.get("version", 1) == 1:
            self._first = _batches_of_v1_state(state, self._meta["global_batch"])
            return
        for key, now in self._meta.items():
            if state.get(key) != now:
                raise DataError(
                    "the data iterator state in the checkpoint does not match this run's data "
                    f"pipeline ({key}: saved {state.get(key)!r}, now {now!r}); resume with the "
                    "same config.batch_size, config.data and seed"
                )
        self._first = int(state["batches"])


def _batches_of_v1_state(state: dict, global_batch: int) -> int:
    """The batches consumed by an iterator that vljax saved before the topology-free order
    (state version 1: grain's loader state over per-process shards of the records). The run
    continues in the new order from there, which is the old one for 1 process with 0 or 1
    worker; otherwise the examples after the resume differ from the old order's."""
    loader = state["loader"]
    count, index = int(state["process_count"]), int(state["process_index"])
    workers = max(int(loader["worker_count"]), 1)
    ways = count * workers
    entries = sum(
        (int(last) + ways - index - int(w) * count) // ways
        for w, last in loader["last_seen_indices"].items()
    )
    return entries // (global_batch // count)


def _absl_flags_parsed() -> None:
    """grain's worker processes read absl flags; outside an absl app they are never parsed."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def default_rows(global_batch: int) -> tuple[tuple[int, int]]:
    """Process i's rows [i * B / P, (i + 1) * B / P) of a global batch of B: what
    `vljax.sharding.process_rows` gives on flat meshes of devices grouped by process (the
    trainer passes the mesh's own)."""
    pc = jax.process_count()
    if global_batch % pc:
        raise DataError(
            f"config.batch_size={global_batch} is not divisible by the {pc} JAX processes"
        )
    b = global_batch // pc
    return ((jax.process_index() * b, (jax.process_index() + 1) * b),)


def make_train_iterator(
    config, tokenizer, seed: int, fields=("image", "tokens"), rows=None
) -> TrainIterator:
    """This process's `rows` ([start, stop) blocks; default: `default_rows`) of every global
    batch of `fields` (of BATCH_FIELDS); see the module docstring."""
    rows = tuple(rows) if rows is not None else default_rows(int(config.batch_size))
    local_batch = sum(stop - start for start, stop in rows)
    source = make_source(config.data.train.dataset, config, "train")
    check_media(source, fields, config.data.train.dataset)
    if len(source) < config.batch_size:
        raise DataError(
            f"the training source has {len(source)} examples, fewer than one global batch of "
            f"{config.batch_size}"
        )
    inner = grain.IndexSampler(
        num_records=len(source),
        shard_options=grain.NoSharding(),
        shuffle=True,
        num_epochs=None,
        seed=int(seed) % (2**31),
    )
    # Keys that only some methods' fields read, read only then: saved configs of older runs
    # lack them.
    optional = {}
    if "multi_tokens" in fields:
        optional.update(
            multi_captions=config.data.train.multi_captions,
            captions_per_example=config.data.train.captions_per_example,
        )
    if "video" in fields:
        optional["frames"] = int(config.model.video.frames)
    transform = TrainTransform(
        tokenizer,
        image_size=int(config.model.image.image_size),
        max_len=int(config.model.text.max_len),
        langs=languages(config.data.train.lang),
        aug=augment_for(config),
        fields=tuple(fields),
        **optional,
    )
    if "third_tokens" in fields:  # Symile's third modality; config keys read only then
        transform = ThirdModality(
            transform,
            max_len=int(config.model.third.max_len),
            vocab_size=int(config.model.third.vocab_size),
            missing_prob=config.data.train.missing_prob,
        )
    workers = int(config.data.num_workers)
    if workers > 0:
        _absl_flags_parsed()

    def make_loader(first_batch: int) -> grain.DataLoader:
        sampler = GlobalBatchSampler(inner, int(config.batch_size), rows, workers, first_batch)
        return grain.DataLoader(
            data_source=source,
            sampler=sampler,
            operations=[transform, grain.Batch(local_batch, drop_remainder=True)],
            worker_count=workers,
            worker_buffer_size=max(1, int(config.data.prefetch)),
            shard_options=grain.NoSharding(),  # the sampler picks this process's rows
            # Reads run in the thread that transforms (or in each worker process): grain's
            # default 16 prefetch threads busy-poll futures and fight over the GIL, which costs
            # more than local ArrayRecord reads. Raise config.data.read_threads for slow
            # (network) storage.
            read_options=grain.ReadOptions(
                num_threads=int(config.data.read_threads), prefetch_buffer_size=64
            ),
        )

    meta = dict(global_batch=int(config.batch_size), source=repr(source), sampler=repr(inner))
    return TrainIterator(make_loader, meta)


def dataset_captions(spec: str, data_dir=None, lang="any", limit: int = 1_000_000, config=None):
    """Up to `limit` caption strings of a dataset (for tokenizer training), in order."""
    langs = languages(lang)
    procedural = {
        "shapes": ShapesSource,
        "shapes_long": ShapesLongSource,
        "shapes_long_sentences": functools.partial(ShapesLongSource, sentences=True),
        "shapes_symile": ShapesSymileSource,
        "moving_shapes": MovingShapesSource,
    }
    name = spec.removesuffix(":train")
    if name in procedural:
        size = int(config.data.train.size) if config is not None else 100_000
        seed = int(config.seed) if config is not None else 0
        src = procedural[name]("train", size=size, seed=seed)
        n = 0
        for i in range(len(src)):
            for text in caption_candidates(src.captions(i), langs):
                if n >= limit:
                    return
                n += 1
                yield text
        return
    if spec.startswith("tfds:"):
        yield from iter_captions(spec, data_dir, langs, limit)
        return
    raise DataError(
        f"unknown dataset {spec!r}: use 'shapes', 'shapes_long', 'shapes_long_sentences' or "
        "'tfds:NAME[:SPLIT]'"
    )


def train_captions(config, limit: int = 100_000):
    """Up to `limit` captions of the run's training data, in its languages."""
    spec = config.data.train.dataset
    lang = config.data.train.lang
    data_dir = config.data.data_dir
    weights = parse_mixture(spec)
    if weights is None:
        yield from dataset_captions(spec, data_dir, lang, limit, config)
        return
    total = sum(weights.values())
    for name, w in weights.items():  # each part in proportion to its weight
        yield from dataset_captions(name, data_dir, lang, max(1, int(limit * w / total)), config)
