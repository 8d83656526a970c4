"""The demo's built-in data: procedural images of 1 to 3 coloured shapes with true captions.

`ShapesSource(split, size, seed, image_size)` is a grain `RandomAccessDataSource`: element i is
`dict(image=uint8 [H, W, 3], captions=dict(en=str, zh=str), short_captions=dict(en=str),
label=int)` and depends only on `(seed, split, i)`, so any process or worker can draw any
example without coordination. The short caption names only colours and shapes.

What an image holds (sizes scale with `image_size`; numbers below are for 64 px):

- 6 colours x 4 shapes = 24 classes (`classnames(lang)`), two sizes: big (21-27 px) and
  small (12-15 px), drawn on a plain dark-grey background with a small colour jitter.
- Two shapes sit side by side (`"A to the left of B"`) or one above the other
  (`"A above B"`), three in a row (`"from left to right: A, B and C"`). The caption always
  names the left / top shape first, so one scene has one caption. Shapes never overlap and
  are at least 3 px apart along the row, so "left of" / "above" hold for the whole extents.
- Every shape is described by size, colour and shape, in English and Chinese.

Splits: `train` (1 to 3 shapes), `zeroshot` (one shape; `label` = colour * 4 + shape, classes
balanced by `i % 24`), `retrieval` (1 or 2 shapes, every caption distinct: scene descriptors
are drawn without replacement), `retrieval_bank` (held-out pairs for DBNorm's banks,
vljax/evals/dbnorm.py: scenes taken from the far end of the retrieval split's list, so the two
share no scene while their sizes sum to at most `RETRIEVAL_SCENES`). Held-out splits fold a
different split id into the seed, so they never share a random stream with `train` or with
each other.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from vljax.errors import ConfigError

COLOURS = {  # name -> (RGB, Chinese)
    "red": ((220, 30, 30), "红色"),
    "green": ((30, 180, 50), "绿色"),
    "blue": ((40, 80, 240), "蓝色"),
    "yellow": ((245, 225, 30), "黄色"),
    "purple": ((150, 50, 210), "紫色"),
    "orange": ((255, 135, 0), "橙色"),
}
SHAPES = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "cross": "十字形"}
SIZES = {"big": "大的", "small": "小的"}
COLOUR_NAMES = list(COLOURS)
SHAPE_NAMES = list(SHAPES)

SHAPES_CLASSNAMES = {
    "en": [f"{c} {s}" for c in COLOUR_NAMES for s in SHAPE_NAMES],
    "zh": [f"{COLOURS[c][1]}{SHAPES[s]}" for c in COLOUR_NAMES for s in SHAPE_NAMES],
}
# Zero-shot prompts that match the training captions ("a big red circle"): averaging the two
# sizes gives a size-free class embedding.
SHAPES_TEMPLATES = {"en": ["a big {}", "a small {}"], "zh": ["一个大的{}", "一个小的{}"]}

# The ids fill the 2 bits the example key keeps for the split (`ShapesSource._rng`).
SPLITS = {"train": 0, "zeroshot": 1, "retrieval": 2, "retrieval_bank": 3}
DEFAULT_SIZES = {"train": 100_000, "zeroshot": 1200, "retrieval": 1000, "retrieval_bank": 1000}
LANGS = ("en", "zh")

BIG_PX = (21, 27)  # px at 64 px images
SMALL_PX = (12, 15)
MARGIN_PX = 3  # px kept free at the border and between shapes along a row
JITTER = 12  # per-channel colour jitter of a shape
BACKGROUND = (15, 70)  # grey level range of the background


def classnames(lang: str = "en") -> list[str]:
    """The 24 zero-shot class names, index = colour * 4 + shape."""
    if lang not in SHAPES_CLASSNAMES:
        raise ValueError(f"shapes captions exist in {LANGS}, not {lang!r}")
    return list(SHAPES_CLASSNAMES[lang])


def describe(obj: tuple[str, str, str], lang: str) -> str:
    """(size, colour, shape) -> "a big red circle" / "一个大的红色圆形"."""
    size, colour, shape = obj
    if lang == "en":
        return f"a {size} {colour} {shape}"
    return f"一个{SIZES[size]}{COLOURS[colour][1]}{SHAPES[shape]}"


def caption(objs: list[tuple[str, str, str]], axis: str, lang: str) -> str:
    """Caption of a scene whose objects are listed left-to-right (axis "h") or top-down ("v")."""
    parts = [describe(o, lang) for o in objs]
    if len(objs) == 1:
        return parts[0]
    if len(objs) == 2:
        if lang == "en":
            rel = "to the left of" if axis == "h" else "above"
            return f"{parts[0]} {rel} {parts[1]}"
        rel = "左边" if axis == "h" else "上面"
        return f"{parts[0]}在{parts[1]}的{rel}"
    if lang == "en":
        order = "from left to right" if axis == "h" else "from top to bottom"
        return f"{order}: {', '.join(parts[:-1])} and {parts[-1]}"
    order = "从左到右" if axis == "h" else "从上到下"
    return f"{order}依次是{'、'.join(parts[:-1])}和{parts[-1]}"


def short_caption(objs: list[tuple[str, str, str]]) -> str:
    """An English summary naming only colours and shapes, in caption order ("a red circle and
    a blue square"): Long-CLIP's short caption (configs/long_clip.py)."""
    parts = [f"a {colour} {shape}" for _, colour, shape in objs]
    if len(parts) == 1:
        return parts[0]
    return f"{', '.join(parts[:-1])} and {parts[-1]}"


def _retrieval_scene_list(seed: int) -> list[tuple]:
    """Every distinct scene once, in a fixed order: a seeded permutation of the ordered pairs
    of distinct objects x axis, with the 48 single objects inserted at every 20th place (48
    of the first 1,000 scenes)."""
    objs = [(z, c, s) for z in SIZES for c in COLOUR_NAMES for s in SHAPE_NAMES]
    pairs = [((a, b), ax) for a in objs for b in objs if a != b for ax in "hv"]
    rng = np.random.default_rng([seed, SPLITS["retrieval"], 2**31 - 1])
    singles = [((objs[j],), "h") for j in rng.permutation(len(objs))]
    pairs = [pairs[j] for j in rng.permutation(len(pairs))]
    scenes = []
    while singles or pairs:
        if (len(scenes) % 20 == 0 and singles) or not pairs:
            scenes.append(singles.pop())
        else:
            scenes.append(pairs.pop())
    return scenes


# 48 single objects + 48 * 47 ordered pairs x 2 axes: every distinct retrieval scene.
RETRIEVAL_SCENES = 48 + 48 * 47 * 2


def _retrieval_descriptors(seed: int, n: int, split: str) -> list[tuple]:
    """The first n scenes of the list for `retrieval`, the last n (from the end) for
    `retrieval_bank`; scene i does not depend on n."""
    if n > RETRIEVAL_SCENES:
        raise ValueError(
            f"shapes:{split} has at most {RETRIEVAL_SCENES} distinct captions; asked for {n}"
        )
    scenes = _retrieval_scene_list(seed)
    return scenes[:n] if split == "retrieval" else scenes[::-1][:n]


MIN_IMAGE_SIZE = 32  # pixels: below it the small shapes are a few pixels and unreadable


def check_image_size(image_size: int, dataset: str) -> None:
    """Refuses a procedural dataset's image size below MIN_IMAGE_SIZE, naming the fix."""
    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(
            f"the {dataset} dataset draws images of at least {MIN_IMAGE_SIZE} px; got "
            f"model.image.image_size={image_size}: set --config.model.image.image_size="
            f"{MIN_IMAGE_SIZE} or more"
        )


class ShapesSource:
    """grain RandomAccessDataSource of procedural shapes images with en/zh captions."""

    def __init__(
        self, split: str = "train", size: int | None = None, seed: int = 0, image_size: int = 64
    ):
        if split not in SPLITS:
            raise ValueError(f"shapes split must be one of {list(SPLITS)}, got {split!r}")
        check_image_size(image_size, "shapes")
        self.split = split
        self.size = int(size if size is not None else DEFAULT_SIZES[split])
        self.seed = int(seed)
        self.image_size = int(image_size)
        self._scenes = (
            _retrieval_descriptors(self.seed, self.size, split)
            if split in ("retrieval", "retrieval_bank")
            else None
        )

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:  # grain validates checkpoints with repr(source)
        return (
            f"ShapesSource(split={self.split!r}, size={self.size}, seed={self.seed}, "
            f"image_size={self.image_size})"
        )

    def __getitem__(self, index: int) -> dict:
        scene = self.scene(index)
        return dict(
            image=self.render(scene, index),
            captions={lang: caption(scene["objs"], scene["axis"], lang) for lang in LANGS},
            short_captions={"en": short_caption(scene["objs"])},
            label=scene["label"],
        )

    def captions(self, index: int) -> dict[str, str]:
        """The captions of example index without drawing it (for tokenizer training)."""
        scene = self.scene(index)
        return {lang: caption(scene["objs"], scene["axis"], lang) for lang in LANGS}

    # -- scene sampling -------------------------------------------------------------------

    def _rng(self, index: int, purpose: int) -> random.Random:
        # Python's Mersenne Twister seeded by one integer made of (seed, split, index, purpose):
        # deterministic across platforms, and ~20x cheaper per scalar draw than numpy's.
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self!r}")
        key = (((self.seed * 4 + SPLITS[self.split]) << 48) + int(index)) * 4 + purpose
        return random.Random(key)

    def scene(self, index: int) -> dict:
        """Objects, layout axis, label, and per-object boxes (cx, cy, side) of example index."""
        rng = self._rng(index, 0)
        label = -1
        if self.split == "train":
            u = rng.random()
            # Half single shapes: within a batch many share colour and size, so the contrastive
            # loss needs the shape to tell them apart (and zero-shot is on single shapes).
            n = 1 if u < 0.5 else (2 if u < 0.85 else 3)
            objs = [_random_obj(rng) for _ in range(n)]
            axis = "h" if rng.random() < 0.5 else "v"
        elif self.split == "zeroshot":
            label = index % 24
            size = "big" if rng.random() < 0.5 else "small"
            objs = [(size, COLOUR_NAMES[label // 4], SHAPE_NAMES[label % 4])]
            axis = "h"
        else:
            objs, axis = self._scenes[index]
            objs = list(objs)
        if len(objs) == 3:  # three in a row fit only when all are small
            objs = [("small",) + o[1:] for o in objs]
        if len(objs) == 1 and label < 0:
            label = COLOUR_NAMES.index(objs[0][1]) * 4 + SHAPE_NAMES.index(objs[0][2])
        boxes = self._layout(rng, objs, axis)
        return dict(objs=objs, axis=axis, label=label, boxes=boxes)

    def _layout(self, rng, objs, axis) -> list[tuple[float, float, float]]:
        scale = self.image_size / 64
        w = self.image_size
        margin = MARGIN_PX * scale
        sides = []
        for size, _, _ in objs:
            lo, hi = BIG_PX if size == "big" else SMALL_PX
            sides.append(rng.uniform(lo, hi) * scale)
        # Along the row: shapes in order, the free space split at random into the gaps.
        free = w - 2 * margin - sum(sides) - margin * (len(objs) - 1)
        cuts = sorted(rng.uniform(0, free) for _ in objs)
        along, pos = [], margin
        for i, s in enumerate(sides):
            pos += cuts[i] - (cuts[i - 1] if i else 0.0)
            along.append(pos + s / 2)
            pos += s + margin
        # Across the row: a shared centre line with a little jitter per shape.
        smax = max(sides)
        centre = rng.uniform(margin + smax / 2, w - margin - smax / 2)
        boxes = []
        for a, s in zip(along, sides, strict=True):
            c = centre + rng.uniform(-4, 4) * scale
            c = min(max(c, margin + s / 2), w - margin - s / 2)
            boxes.append((a, c, s) if axis == "h" else (c, a, s))
        return boxes

    # -- drawing ----------------------------------------------------------------------------

    def render(self, scene: dict, index: int) -> np.ndarray:
        rng = self._rng(index, 1)
        w = self.image_size
        grey = rng.randrange(*BACKGROUND)
        bg = tuple(min(max(grey + rng.randint(-6, 6), 0), 255) for _ in range(3))
        img = Image.new("RGB", (w, w), bg)
        draw = ImageDraw.Draw(img)
        for (_, colour, shape), (cx, cy, s) in zip(scene["objs"], scene["boxes"], strict=True):
            base = COLOURS[colour][0]
            fill = tuple(min(max(v + rng.randint(-JITTER, JITTER), 0), 255) for v in base)
            draw_shape(draw, shape, cx, cy, s, fill)
        return np.asarray(img, dtype=np.uint8)


def _random_obj(rng) -> tuple[str, str, str]:
    return (
        "big" if rng.random() < 0.5 else "small",
        COLOUR_NAMES[rng.randrange(len(COLOUR_NAMES))],
        SHAPE_NAMES[rng.randrange(len(SHAPE_NAMES))],
    )


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx, cy, s, fill) -> None:
    h = s / 2
    x0, y0, x1, y1 = cx - h, cy - h, cx + h - 1, cy + h - 1
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif shape == "square":
        k = s * 0.06  # a touch smaller, so its area is closer to the circle's
        draw.rectangle((x0 + k, y0 + k, x1 - k, y1 - k), fill=fill)
    elif shape == "triangle":
        draw.polygon(((cx, y0), (x0, y1), (x1, y1)), fill=fill)
    elif shape == "cross":
        t = s / 6  # half the arm width: arms are a third of the side
        draw.rectangle((x0, cy - t, x1, cy + t - 1), fill=fill)
        draw.rectangle((cx - t, y0, cx + t - 1, y1), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")
