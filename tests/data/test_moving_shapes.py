"""The video demo data (vljax/data/moving_shapes.py): every caption is true of its frames, read
back from the pixels with reference colours, in order; the Chinese caption names the same
event; clips are deterministic per (seed, split, index); the retrieval split's captions are
distinct."""

import re

import numpy as np
import pytest

from tests.data.reference_colours import colour_mask
from vljax.data.moving_shapes import (
    DIRECTIONS,
    MovingShapesSource,
    clip_caption,
    distinct_captions,
)
from vljax.data.shapes import COLOUR_NAMES, SHAPE_NAMES
from vljax.errors import DataError

OBJ = r"a (?:big|small) (\w+) (?:circle|square|triangle|cross)"
MOVE = re.compile(rf"^{OBJ} moves (to the right|to the left|down|up)$")
CHANGE = re.compile(rf"^{OBJ} turns (\w+)$")
ORDER = re.compile(rf"^{OBJ} appears, then {OBJ}$")
ZH_COLOURS = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色",
              "purple": "紫色", "orange": "橙色"}  # fmt: skip
ZH_DIRECTIONS = {"to the right": "向右", "to the left": "向左", "down": "向下", "up": "向上"}


@pytest.fixture(scope="module")
def clips():
    source = MovingShapesSource("train", 90, seed=3, image_size=64, frames=8)
    return [source[i] for i in range(len(source))]


def test_clips_are_deterministic_and_split_dependent(clips):
    again = MovingShapesSource("train", 5000, seed=3, image_size=64, frames=8)
    for i in (0, 41, 89):
        assert np.array_equal(again[i]["video"], clips[i]["video"])
        assert again[i]["captions"] == clips[i]["captions"]
    held_out = MovingShapesSource("retrieval", 90, seed=3, image_size=64, frames=8)
    assert not np.array_equal(held_out[0]["video"], clips[0]["video"])
    assert clips[0]["video"].shape == (8, 64, 64, 3) and clips[0]["video"].dtype == np.uint8
    assert {c["event"] for c in clips} == {"move", "change", "order"}


def test_every_english_caption_is_true_of_the_frames_in_order(clips):
    for clip in clips:
        video, text = clip["video"], clip["captions"]["en"]
        if m := MOVE.match(text):
            colour, direction = m.groups()
            mask = colour_mask(video, colour)  # [T, H, W]
            assert mask.sum(axis=(1, 2)).min() > 10, text
            ys, xs = (np.array([np.nonzero(f)[k].mean() for f in mask]) for k in (0, 1))
            along, sign = {"to the right": (xs, 1), "to the left": (xs, -1),
                           "down": (ys, 1), "up": (ys, -1)}[direction]  # fmt: skip
            steps = sign * np.diff(along)
            assert (steps > 0).all() and steps.sum() > 0.3 * 64, (text, along)
        elif m := CHANGE.match(text):
            before, after = m.groups()
            assert (
                colour_mask(video[0], before).sum() > 10 and not colour_mask(video[0], after).any()
            )
            assert (
                colour_mask(video[-1], after).sum() > 10
                and not colour_mask(video[-1], before).any()
            )
        elif m := ORDER.match(text):
            first, second = m.groups()
            shown = [np.nonzero(colour_mask(video, c).sum(axis=(1, 2)) > 10)[0] for c in m.groups()]
            assert shown[0][0] < shown[1][0], text  # the first named appears first ...
            assert shown[0][-1] == shown[1][-1] == len(video) - 1  # ... and both stay
        else:
            raise AssertionError(f"caption of no known event: {text!r}")


def test_chinese_caption_names_the_same_event(clips):
    for clip in clips:
        en, zh = clip["captions"]["en"], clip["captions"]["zh"]
        colours = [w for w in en.replace(",", "").split() if w in ZH_COLOURS]
        positions = [zh.index(ZH_COLOURS[c]) for c in colours]
        assert positions == sorted(positions), (en, zh)  # the same colours, in the same order
        if m := MOVE.match(en):
            assert ZH_DIRECTIONS[m.group(2)] in zh
        elif CHANGE.match(en):
            assert "变成" in zh
        else:
            assert zh.startswith("先出现") and "然后出现" in zh


def test_bad_arguments_say_what_is_allowed():
    with pytest.raises(ValueError, match="at least 4 frames"):
        MovingShapesSource(frames=2)
    with pytest.raises(ValueError, match="split must be one of"):
        MovingShapesSource("zeroshot")
    with pytest.raises(IndexError):
        MovingShapesSource("train", 3)[3]


def every_caption(lang: str) -> set[str]:
    """Every caption an event can have, from the event's parameters."""
    objs = [(size, colour, shape) for size in ("big", "small") for colour in COLOUR_NAMES
            for shape in SHAPE_NAMES]  # fmt: skip
    events = [dict(kind="move", obj=o, direction=d) for o in objs for d in DIRECTIONS]
    events += [dict(kind="change", obj=o, after=c) for o in objs for c in COLOUR_NAMES if c != o[1]]
    events += [dict(kind="order", objs=[a, b]) for a in objs for b in objs if a[1] != b[1]]
    return {clip_caption(e, lang) for e in events}


def test_the_retrieval_split_has_distinct_captions_up_to_their_number():
    """Every clip of `retrieval` has a caption no other clip has, in both languages (the same
    clips at any size: a prefix), deterministically; a size above the number of captions an
    event can have is refused with the largest size."""
    assert len(every_caption("en")) == len(every_caption("zh")) == distinct_captions() == 2352
    src = MovingShapesSource("retrieval", 600, seed=3, image_size=32, frames=4)
    captions = [src.captions(i) for i in range(len(src))]
    for lang in ("en", "zh"):
        assert len({c[lang] for c in captions}) == len(src)
    small = MovingShapesSource("retrieval", 50, seed=3, image_size=32, frames=4)
    assert [small.captions(i) for i in range(50)] == captions[:50]
    assert small[7]["captions"] == captions[7]
    assert {src.event(i)["kind"] for i in range(len(src))} == {"move", "change", "order"}
    with pytest.raises(DataError, match="2352 at most.*use size <= 2352"):
        MovingShapesSource("retrieval", 2353, seed=3)
    train = MovingShapesSource("train", 1000, seed=3)  # captions repeat where they may
    assert len({train.captions(i)["en"] for i in range(len(train))}) < len(train)
