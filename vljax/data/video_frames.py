"""Which frames of a clip `vljax prepare --from-video-manifest` stores: pure functions from a
clip's frames (their count, or their timestamps in seconds) to T frame indices, in time order.

- `uniform`: T indices spread evenly over the clip, the centre frame of each of T equal
  segments (10 frames, T=4: 1, 3, 6, 8).
- `fps`: one frame every 1/F seconds from the first frame's time (the frame on screen at that
  time: the last one whose timestamp is not later), the first T of them (10 frames at 10 fps,
  F=5, T=4: 0, 2, 4, 6).
- `random_segment`: T equal segments, one frame drawn from each by a seeded generator (TSN's
  sampling), so the same seed stores the same frames.

A clip too short for T frames (fewer than T frames; for `fps`, shorter than (T-1)/F seconds)
gets what it has, in order, then its last frame repeated up to T (3 frames, T=5:
0, 1, 2, 2, 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vljax.choices import VIDEO_SAMPLINGS, expected
from vljax.errors import ConfigError

# model.video.frames' default (configs/common.py), so a prepared clip fits the default model.
DEFAULT_FRAMES = 8
# Shorter side of a stored frame: above the 224-px crops the image towers read, small enough
# that a clip of 8 JPEG frames stays near the size of one full-resolution photo.
DEFAULT_FRAME_SIZE = 256
# Timestamps are float seconds from the stream's time base: a target time within this of a
# frame's time counts as reaching that frame.
_EPS = 1e-6


@dataclass(frozen=True)
class VideoOptions:
    """How `vljax prepare --from-video-manifest` samples and stores frames."""

    frames: int = DEFAULT_FRAMES  # T, frames stored per clip
    sampling: str = "uniform"  # one of VIDEO_SAMPLINGS
    fps: float | None = None  # --sampling fps: frames per second to take
    frame_size: int = DEFAULT_FRAME_SIZE  # larger frames are downscaled to this shorter side
    seed: int = 0  # --sampling random_segment

    def check(self) -> None:
        """Raises ConfigError for a value prepare cannot use (before any input is read)."""
        if self.sampling not in VIDEO_SAMPLINGS:
            raise ConfigError(
                f"--sampling must be one of {expected(VIDEO_SAMPLINGS)}, got {self.sampling!r}"
            )
        if self.frames < 1:
            raise ConfigError(f"--frames must be a positive number, got {self.frames}")
        if self.frame_size < 1:
            raise ConfigError(f"--frame-size must be a positive number, got {self.frame_size}")
        if self.sampling == "fps" and (self.fps is None or not self.fps > 0):
            raise ConfigError(
                f"--sampling fps needs --fps F, a positive number of frames per second "
                f"(got {self.fps})"
            )
        if self.sampling != "fps" and self.fps is not None:
            raise ConfigError(
                f"--fps goes with --sampling fps (got --sampling {self.sampling}); drop it or "
                "pass --sampling fps"
            )


def pad(indices: Sequence[int], frames: int) -> list[int]:
    """indices followed by their last one repeated up to `frames` entries."""
    out = list(indices)
    return out + [out[-1]] * (frames - len(out))


def uniform_indices(n: int, frames: int) -> list[int]:
    """The centre frame of each of `frames` equal segments of n frames."""
    if n < frames:
        return pad(range(n), frames)
    return [(2 * i + 1) * n // (2 * frames) for i in range(frames)]


def fps_indices(timestamps: Sequence[float], frames: int, fps: float) -> list[int]:
    """The frame on screen at first_time + k / fps, k = 0 .. frames - 1, while that time is
    within the clip (up to its last frame's timestamp); timestamps ascending, in seconds."""
    t0, end = timestamps[0], timestamps[-1]
    out: list[int] = []
    j = 0
    for k in range(frames):
        target = t0 + k / fps
        if target > end + _EPS:
            break
        while j + 1 < len(timestamps) and timestamps[j + 1] <= target + _EPS:
            j += 1
        out.append(j)
    return pad(out, frames)


def random_segment_indices(n: int, frames: int, rng: np.random.Generator) -> list[int]:
    """One frame drawn uniformly from each of `frames` equal segments of n frames."""
    if n < frames:
        return pad(range(n), frames)
    bounds = [i * n // frames for i in range(frames + 1)]  # each segment holds >= 1 frame
    return [int(rng.integers(lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def sample_indices(
    options: VideoOptions, timestamps: Sequence[float], rng: np.random.Generator
) -> list[int]:
    """options.frames indices into a clip whose frames have these timestamps (seconds,
    ascending; at least one frame)."""
    options.check()  # a bad --sampling is refused with the valid names
    n = len(timestamps)
    if options.sampling == "uniform":
        return uniform_indices(n, options.frames)
    if options.sampling == "fps":
        return fps_indices(timestamps, options.frames, options.fps)
    return random_segment_indices(n, options.frames, rng)
