"""Long captions for the shapes data (Long-CLIP's demo, configs/long_clip.py).

`ShapesLongSource(split, size, seed, image_size)`: four shapes in a 2 x 2 grid, one per
quadrant, with a long caption that names every shape by its place,

    "top left a big red circle, top right a small blue square, bottom left a big green
     cross and bottom right a small yellow triangle"                  (about 30 pieces)

and a short one that names the shapes without their places or sizes, in reading order,

    "a red circle, a blue square, a green cross and a yellow triangle"

Element i is `dict(image=uint8 [H, W, 3], captions={"en": long}, short_captions={"en":
short}, label=-1)` and depends only on (seed, split, i). The long caption is longer than the
demo's 24-token text tower: a model that reads only its first 24 tokens cannot tell two
scenes apart that differ in the bottom-right shape. Splits: `train`, `retrieval` (eval;
captions distinct).

With `sentences=True` (datasets `shapes_long_sentences`, `shapes_long_sentences:retrieval`)
the same scenes are captioned one sentence per shape, for DreamLIP's sub-captions
(configs/multi_positive.py):

    "top left a big red circle. top right a small blue square. bottom left a big green
     cross. bottom right a small yellow triangle."
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from vljax.data.shapes import (
    BACKGROUND,
    BIG_PX,
    COLOUR_NAMES,
    COLOURS,
    JITTER,
    MARGIN_PX,
    SHAPE_NAMES,
    SIZES,
    SMALL_PX,
    check_image_size,
    draw_shape,
    short_caption,
)

SPLITS = {"train": 0, "retrieval": 1}
DEFAULT_SIZES = {"train": 100_000, "retrieval": 500}
PLACES = ("top left", "top right", "bottom left", "bottom right")
OBJECTS = [(z, c, s) for z in SIZES for c in COLOUR_NAMES for s in SHAPE_NAMES]  # 48


def _placed(objs) -> list[str]:
    """["top left a big red circle", ...]: each shape named by its place."""
    return [f"{place} a {size} {colour} {shape}" for place, (size, colour, shape) in
            zip(PLACES, objs, strict=True)]  # fmt: skip


def long_caption(objs) -> str:
    parts = _placed(objs)
    return f"{', '.join(parts[:-1])} and {parts[-1]}"


def sentence_caption(objs) -> str:
    """The long caption as four sentences, one per shape."""
    return " ".join(f"{part}." for part in _placed(objs))


class ShapesLongSource:
    """grain RandomAccessDataSource of 2 x 2 shape grids with long and short captions."""

    def __init__(self, split="train", size=None, seed=0, image_size=64, sentences=False):
        if split not in SPLITS:
            raise ValueError(f"shapes_long split must be one of {list(SPLITS)}, got {split!r}")
        check_image_size(image_size, "shapes_long")
        self.split, self.seed, self.image_size = split, int(seed), int(image_size)
        self.size = int(size if size is not None else DEFAULT_SIZES[split])
        self.sentences = bool(sentences)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:  # grain validates checkpoints with repr(source)
        # `sentences` shown only when set: the one-sentence source keeps its earlier repr, so
        # checkpoints of runs on it still restore.
        extra = ", sentences=True" if self.sentences else ""
        return (
            f"ShapesLongSource(split={self.split!r}, size={self.size}, seed={self.seed}, "
            f"image_size={self.image_size}{extra})"
        )

    def _rng(self, index: int, purpose: str) -> random.Random:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self!r}")
        # A str seed is hashed with SHA-512: the same stream on every platform and process.
        return random.Random(f"shapes_long/{self.seed}/{self.split}/{int(index)}/{purpose}")

    def scene(self, index: int) -> list[tuple[str, str, str]]:
        """The four (size, colour, shape) in PLACES order. Retrieval scenes are distinct: the
        index picks the bottom row (48 x 48 combinations), the rest is random."""
        rng = self._rng(index, "scene")
        objs = [
            (rng.choice(list(SIZES)), rng.choice(COLOUR_NAMES), rng.choice(SHAPE_NAMES))
            for _ in PLACES
        ]
        if self.split == "retrieval":
            if index >= len(OBJECTS) ** 2:
                raise IndexError(f"shapes_long:retrieval has {len(OBJECTS) ** 2} scenes at most")
            objs[2] = OBJECTS[index // len(OBJECTS)]
            objs[3] = OBJECTS[index % len(OBJECTS)]
        return objs

    def caption(self, objs) -> str:
        return sentence_caption(objs) if self.sentences else long_caption(objs)

    def captions(self, index: int) -> dict[str, str]:
        return {"en": self.caption(self.scene(index))}

    def __getitem__(self, index: int) -> dict:
        objs = self.scene(index)
        return dict(
            image=self.render(objs, index),
            captions={"en": self.caption(objs)},
            short_captions={"en": short_caption(objs)},
            label=-1,
        )

    def render(self, objs, index: int) -> np.ndarray:
        rng = self._rng(index, "render")
        w = self.image_size
        scale = w / 64
        grey = rng.randrange(*BACKGROUND)
        img = Image.new("RGB", (w, w), (grey, grey, grey))
        draw = ImageDraw.Draw(img)
        cell = w / 2
        for q, (size, colour, shape) in enumerate(objs):
            lo, hi = BIG_PX if size == "big" else SMALL_PX
            side = min(rng.uniform(lo, hi) * scale, cell - 2 * MARGIN_PX * scale)
            free = cell - side - 2 * MARGIN_PX * scale
            x0 = (q % 2) * cell + MARGIN_PX * scale + rng.uniform(0, free)
            y0 = (q // 2) * cell + MARGIN_PX * scale + rng.uniform(0, free)
            base = COLOURS[colour][0]
            fill = tuple(min(max(v + rng.randint(-JITTER, JITTER), 0), 255) for v in base)
            draw_shape(draw, shape, x0 + side / 2, y0 + side / 2, side, fill)
        return np.asarray(img, dtype=np.uint8)
