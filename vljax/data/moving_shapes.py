"""Video-text demo data: short clips of coloured shapes whose captions need the frames in order.

`MovingShapesSource(split, size, seed, image_size, frames)` is a grain `RandomAccessDataSource`:
element i is `dict(video=uint8 [T, H, W, 3], captions=dict(en=str, zh=str), event=str)` and
depends only on `(seed, split, i)`, like the image data (vljax/data/shapes.py, whose colours,
shapes, sizes and drawing it shares).

Each clip shows one event, drawn uniformly:

- `move`: one shape travels a fixed distance right, left, down or up ("a big red circle moves
  to the right" / "一个大的红色圆形向右移动"). Its start is random along the path, so a
  single frame shows a shape at a place both directions pass through.
- `change`: one shape turns from one colour to another halfway ("a small blue square turns
  green" / "一个小的蓝色正方形变成绿色"). A single frame shows one colour, before or after.
- `order`: two shapes of different colours appear one after the other and stay ("a big red
  circle appears, then a small blue cross" / "先出现一个大的红色圆形，然后出现一个小的
  蓝色十字形"). The last frames show both; which side each takes is random, so the place
  does not tell the order either.

Splits: `train` and `retrieval` (a different split id in the seed: never the same random
stream as `train`). The `retrieval` split's captions are distinct: its clip i is the i-th
draw of its stream whose English and Chinese captions are both new, so every text->video
query has one right clip (a shared caption would rank its clips alike and cap R@1). So its
size is at most `distinct_captions()` = 2,352 (move 192, change 240, order 1,920), and its
clips favour `order`, the event with the most captions, more the larger the size.
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
    SMALL_PX,
    check_image_size,
    describe,
    draw_shape,
)
from vljax.errors import DataError

SPLITS = {"train": 0, "retrieval": 1}
DEFAULT_SIZES = {"train": 100_000, "retrieval": 1000}
EVENTS = ("move", "change", "order")
# direction -> (unit step along x, along y, English, Chinese)
DIRECTIONS = {
    "right": (1, 0, "moves to the right", "向右移动"),
    "left": (-1, 0, "moves to the left", "向左移动"),
    "down": (0, 1, "moves down", "向下移动"),
    "up": (0, -1, "moves up", "向上移动"),
}
TRAVEL = 0.4  # of the frame's side: how far a moving shape goes over the clip
DISTINCT_SPLITS = ("retrieval",)  # splits whose clips never share a caption (module doc)


def distinct_captions() -> int:
    """How many different captions (in each language) `MovingShapesSource.event` can draw: an
    object is a size, colour and shape; `move` adds a direction, `change` another colour,
    `order` a second object of another colour."""
    objects = 2 * len(COLOUR_NAMES) * len(SHAPE_NAMES)
    others = objects - objects // len(COLOUR_NAMES)  # the objects of any other colour
    return objects * (len(DIRECTIONS) + len(COLOUR_NAMES) - 1 + others)


def clip_caption(event: dict, lang: str) -> str:
    """The caption of an event (as `MovingShapesSource.event` draws it) in "en" or "zh"."""
    kind = event["kind"]
    if kind == "move":
        _, _, en, zh = DIRECTIONS[event["direction"]]
        what = describe(event["obj"], lang)
        return f"{what} {en}" if lang == "en" else f"{what}{zh}"
    if kind == "change":
        after = event["after"]
        if lang == "en":
            return f"{describe(event['obj'], lang)} turns {after}"
        return f"{describe(event['obj'], lang)}变成{COLOURS[after][1]}"
    first, second = (describe(o, lang) for o in event["objs"])
    if lang == "en":
        return f"{first} appears, then {second}"
    return f"先出现{first}，然后出现{second}"


class MovingShapesSource:
    """grain RandomAccessDataSource of procedural shape clips with en/zh captions."""

    media = "video"  # its examples hold `video` (vljax/data/pipeline.py, source_media)

    def __init__(
        self,
        split: str = "train",
        size: int | None = None,
        seed: int = 0,
        image_size: int = 64,
        frames: int = 8,
    ):
        if split not in SPLITS:
            raise ValueError(f"moving_shapes split must be one of {list(SPLITS)}, got {split!r}")
        check_image_size(image_size, "moving_shapes")
        if frames < 4:
            raise ValueError(
                f"moving_shapes clips need at least 4 frames to show an event in order, got "
                f"{frames}"
            )
        self.split = split
        self.size = int(size if size is not None else DEFAULT_SIZES[split])
        self.seed = int(seed)
        self.image_size = int(image_size)
        self.frames = int(frames)
        # Clip i is draw self._draws[i] of the split's stream (draw i where captions may repeat).
        self._draws = self._distinct_draws() if split in DISTINCT_SPLITS else None

    def _distinct_draws(self) -> list[int]:
        """The first `size` draws whose captions, in each language, no earlier kept draw has."""
        most = distinct_captions()
        if self.size > most:
            raise DataError(
                f"moving_shapes' {self.split} split has distinct captions, {most} at most, and "
                f"size={self.size} asks for more clips; use size <= {most}"
            )
        seen, draws, draw = set(), [], 0
        while len(draws) < self.size:
            captions = self._captions(self._event(draw))
            if not seen.intersection(captions.items()):
                seen.update(captions.items())
                draws.append(draw)
            draw += 1
        return draws

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:  # grain validates checkpoints with repr(source)
        return (
            f"MovingShapesSource(split={self.split!r}, size={self.size}, seed={self.seed}, "
            f"image_size={self.image_size}, frames={self.frames})"
        )

    def __getitem__(self, index: int) -> dict:
        draw = self._draw(index)
        event = self._event(draw)
        return dict(
            video=self._render(event, draw),
            captions=self._captions(event),
            event=event["kind"],
        )

    def _draw(self, index: int) -> int:
        """The draw of the split's stream that clip `index` is."""
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self!r}")
        return int(index) if self._draws is None else self._draws[index]

    def _rng(self, draw: int, purpose: int) -> random.Random:
        # As ShapesSource._rng: one integer made of (seed, split, draw, purpose).
        key = (((self.seed * 4 + SPLITS[self.split]) << 48) + int(draw)) * 4 + purpose
        return random.Random(key)

    @staticmethod
    def _captions(event: dict) -> dict[str, str]:
        return {lang: clip_caption(event, lang) for lang in ("en", "zh")}

    def captions(self, index: int) -> dict[str, str]:
        """The captions of clip index without drawing it (for tokenizer training)."""
        return self._captions(self.event(index))

    def event(self, index: int) -> dict:
        """What clip `index` shows: its kind, objects ((size, colour, shape) as in shapes.py)
        and, per object, its box (cx, cy, side) in each frame (None while not shown) and its
        colour in each frame."""
        return self._event(self._draw(index))

    def _event(self, draw: int) -> dict:
        rng = self._rng(draw, 0)
        kind = EVENTS[rng.randrange(len(EVENTS))]
        w, t = self.image_size, self.frames
        scale = w / 64
        margin = MARGIN_PX * scale

        def obj():
            return (
                "big" if rng.random() < 0.5 else "small",
                COLOUR_NAMES[rng.randrange(len(COLOUR_NAMES))],
                SHAPE_NAMES[rng.randrange(len(SHAPE_NAMES))],
            )

        def side(size):
            lo, hi = BIG_PX if size == "big" else SMALL_PX
            return rng.uniform(lo, hi) * scale

        if kind == "move":
            o = obj()
            s = side(o[0])
            direction = list(DIRECTIONS)[rng.randrange(len(DIRECTIONS))]
            dx, dy, _, _ = DIRECTIONS[direction]
            travel = TRAVEL * w
            lo, hi = margin + s / 2, w - margin - s / 2
            # Along the motion: the whole path inside the frame, its start random.
            start = rng.uniform(lo, hi - travel)
            if dx + dy < 0:
                start = lo + hi - start  # the mirror path, travelled the other way
            across = rng.uniform(lo, hi)
            boxes = []
            for f in range(t):
                along = start + (dx + dy) * travel * f / (t - 1)
                boxes.append((along, across, s) if dx else (across, along, s))
            return dict(kind=kind, obj=o, direction=direction, objs=[o], boxes=[boxes],
                        colours=[[o[1]] * t])  # fmt: skip
        if kind == "change":
            o = obj()
            after = COLOUR_NAMES[rng.randrange(len(COLOUR_NAMES) - 1)]
            if after == o[1]:
                after = COLOUR_NAMES[-1]  # any colour but the first, uniformly
            s = side(o[0])
            lo, hi = margin + s / 2, w - margin - s / 2
            box = (rng.uniform(lo, hi), rng.uniform(lo, hi), s)
            colours = [o[1] if f < t // 2 else after for f in range(t)]
            return dict(kind=kind, obj=o, after=after, objs=[o], boxes=[[box] * t],
                        colours=[colours])  # fmt: skip
        first = obj()
        second = obj()
        while second[1] == first[1]:  # the caption tells them apart by colour too
            second = obj()
        # Each in its own half, the halves assigned at random; shown from its frame onwards.
        halves = [0, 1] if rng.random() < 0.5 else [1, 0]
        horizontal = rng.random() < 0.5
        shows = (t // 4, t // 2)
        boxes = []
        for o, half, shown in zip((first, second), halves, shows, strict=True):
            s = side(o[0])
            # Inside its half: `margin` from the frame's edge, half of it from the middle.
            edge, middle = margin + s / 2, margin / 2 + s / 2
            a = (
                rng.uniform(edge, w / 2 - middle)
                if half == 0
                else rng.uniform(w / 2 + middle, w - edge)
            )
            b = rng.uniform(margin + s / 2, w - margin - s / 2)
            box = (a, b, s) if horizontal else (b, a, s)
            boxes.append([box if f >= shown else None for f in range(t)])
        return dict(kind=kind, objs=[first, second], boxes=boxes,
                    colours=[[first[1]] * t, [second[1]] * t])  # fmt: skip

    def render(self, event: dict, index: int) -> np.ndarray:
        """uint8 [T, H, W, 3]: clip `index`'s frames on one background, each shape's fill
        jittered once per clip (per colour), so a colour reads the same in every frame."""
        return self._render(event, self._draw(index))

    def _render(self, event: dict, draw: int) -> np.ndarray:
        rng = self._rng(draw, 1)
        w = self.image_size
        grey = rng.randrange(*BACKGROUND)
        bg = tuple(min(max(grey + rng.randint(-6, 6), 0), 255) for _ in range(3))
        fills = {
            c: tuple(min(max(v + rng.randint(-JITTER, JITTER), 0), 255) for v in COLOURS[c][0])
            for c in COLOUR_NAMES
        }
        frames = []
        for f in range(self.frames):
            img = Image.new("RGB", (w, w), bg)
            draw = ImageDraw.Draw(img)
            for (_, _, shape), boxes, colours in zip(
                event["objs"], event["boxes"], event["colours"], strict=True
            ):
                if boxes[f] is not None:
                    cx, cy, s = boxes[f]
                    draw_shape(draw, shape, cx, cy, s, fills[colours[f]])
            frames.append(np.asarray(img, dtype=np.uint8))
        return np.stack(frames)
