"""Symile's demo data: three modalities whose dependence is only joint.

`ShapesSymileSource(split, size, seed, image_size)`: element i is

    dict(image=uint8 [H, W, 3], captions={"en": "shift by two"}, third="purple",
         label=(c + k) % 6, colour=c, shift=k)

- the image: one shape of the shapes data (random shape, size and place) in colour c (of the
  6 colours of vljax/data/shapes.py); only its colour matters here;
- the caption: a shift k in 0..5, in words ("shift by two");
- the third modality: the name of colour (c + k) mod 6, a string that the training pipeline
  spells as a token sequence (vljax/data/third_modality.py); `label` is its index in
  `COLOUR_NAMES`.

c and k are drawn uniformly and independently, so every pair of modalities is independent:
(c, k) by construction, and (c, t) and (k, t) because t = (c + k) mod 6 is uniform whichever
one of c, k is fixed. Objectives over pairs (CLIP on each pair) have nothing to learn, and
scoring a third from the image and the caption by pairwise similarities is at chance (1/6);
only the triple determines it. This is the Symile paper's XOR experiment (arXiv 2411.01053)
on 6 values instead of 2.

Splits: `train` (c, k random) and `test` (held out: a different split id in the seed; index
i has (c, k) = ((i // 6) % 6, i % 6), so every 36 examples hold each pair once).
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
    draw_shape,
)
from vljax.data.third_modality import spell

SPLITS = {"train": 0, "test": 1}
DEFAULT_SIZES = {"train": 100_000, "test": 1_008}  # 28 x the 36 (colour, shift) pairs
SHIFT_WORDS = ("zero", "one", "two", "three", "four", "five")  # index = shift k


def shift_caption(shift: int) -> str:
    """The caption of shift k: "shift by two"."""
    return f"shift by {SHIFT_WORDS[shift]}"


def third_colour(colour: int, shift: int) -> int:
    """The index of the third modality's colour: (c + k) mod 6."""
    return (colour + shift) % len(COLOUR_NAMES)


class ShapesSymileSource:
    """grain RandomAccessDataSource of (shape image, shift caption, shifted colour name)."""

    def __init__(self, split="train", size=None, seed=0, image_size=64):
        if split not in SPLITS:
            raise ValueError(f"shapes_symile split must be one of {list(SPLITS)}, got {split!r}")
        check_image_size(image_size, "shapes_symile")
        self.split, self.seed, self.image_size = split, int(seed), int(image_size)
        self.size = int(size if size is not None else DEFAULT_SIZES[split])

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:  # grain validates checkpoints with repr(source)
        return (
            f"ShapesSymileSource(split={self.split!r}, size={self.size}, seed={self.seed}, "
            f"image_size={self.image_size})"
        )

    def _check(self, index: int) -> None:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self!r}")

    def _rng(self, index: int, purpose: str) -> random.Random:
        self._check(index)
        # A str seed is hashed with SHA-512: the same stream on every platform and process.
        return random.Random(f"shapes_symile/{self.seed}/{self.split}/{int(index)}/{purpose}")

    def colour_and_shift(self, index: int) -> tuple[int, int]:
        """(c, k) of example index."""
        n = len(COLOUR_NAMES)
        if self.split == "test":
            self._check(index)
            return (index // n) % n, index % n
        rng = self._rng(index, "pair")
        return rng.randrange(n), rng.randrange(n)

    def captions(self, index: int) -> dict[str, str]:
        """The caption of example index without drawing it (for tokenizer training)."""
        return {"en": shift_caption(self.colour_and_shift(index)[1])}

    def __getitem__(self, index: int) -> dict:
        colour, shift = self.colour_and_shift(index)
        third = third_colour(colour, shift)
        return dict(
            image=self.render(colour, index),
            captions={"en": shift_caption(shift)},
            third=COLOUR_NAMES[third],
            label=third,
            colour=colour,
            shift=shift,
        )

    def render(self, colour: int, index: int) -> np.ndarray:
        """One shape of the given colour, random shape, size and place, on a grey ground."""
        rng = self._rng(index, "render")
        w = self.image_size
        scale = w / 64
        grey = rng.randrange(*BACKGROUND)
        img = Image.new("RGB", (w, w), (grey, grey, grey))
        lo, hi = BIG_PX if rng.random() < 0.5 else SMALL_PX
        side = rng.uniform(lo, hi) * scale
        margin = MARGIN_PX * scale
        cx = rng.uniform(margin + side / 2, w - margin - side / 2)
        cy = rng.uniform(margin + side / 2, w - margin - side / 2)
        base = COLOURS[COLOUR_NAMES[colour]][0]
        fill = tuple(min(max(v + rng.randint(-JITTER, JITTER), 0), 255) for v in base)
        draw_shape(ImageDraw.Draw(img), rng.choice(SHAPE_NAMES), cx, cy, side, fill)
        return np.asarray(img, dtype=np.uint8)


def symile_test_set(image_size: int, n, seed: int, third_max_len: int, third_vocab: int) -> dict:
    """The `third_modality` eval's data (vljax/data/evalsets.py): the test split's images and
    captions, `labels` (int32 [N], the index of each example's third among the candidates),
    `candidates` (the 6 colour names) and `candidate_tokens` (them spelled, [6, L])."""
    src = ShapesSymileSource("test", size=n, seed=seed, image_size=image_size)
    examples = [src[i] for i in range(len(src))]
    return dict(
        images=np.stack([ex["image"] for ex in examples]),
        captions=[ex["captions"]["en"] for ex in examples],
        labels=np.asarray([ex["label"] for ex in examples], np.int32),
        candidates=list(COLOUR_NAMES),
        candidate_tokens=spell(COLOUR_NAMES, third_max_len, third_vocab),
        classnames=None,
        templates=None,
    )
