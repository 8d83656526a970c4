"""Video files -> T JPEG frames, for `vljax prepare --from-video-manifest`, with PyAV (the
`video` extra: `pip install -e '.[video]'`; PyAV's wheel carries its own ffmpeg).

`check_video` is `prepare.check_image`'s counterpart: it runs in the prepare workers and returns
(frames | None, skip reason, detail), so a bad video is skipped and counted like a bad image.
A file is read twice but decoded once: the first pass demuxes the stream's packets (no
decoding) for the frame count and timestamps the sampling needs (vljax/data/video_frames.py),
the second decodes frames up to the last sampled one and keeps the sampled ones, converted to
RGB, downscaled so the shorter side is at most `frame_size` (bicubic), and encoded as JPEG.

Skip reasons: `missing file`, `empty file`, `not a video` (PyAV cannot open it: a text file
named .mp4), `no video stream` (an audio file, or a truncated mp4 whose index is gone),
`no frames`, `too many pixels` (a frame above `--max-pixels`, from the header),
`unreadable video` (a decode error, or fewer decodable frames than the container lists).
"""

from __future__ import annotations

import io
import os
import zlib

import numpy as np
from PIL import Image

from vljax.data.records import JPEG_QUALITY
from vljax.data.video_frames import VideoOptions, sample_indices


def clip_rng(seed: int, source: str) -> np.random.Generator:
    """The generator of one clip's random_segment draw: a function of the seed and the
    example's source alone, so the stored frames do not depend on worker count or order."""
    return np.random.default_rng([seed, zlib.crc32(source.encode("utf-8", "backslashreplace"))])


def check_video(args) -> tuple[list[bytes] | None, str, str]:
    """(path, source, VideoOptions, max_pixels) -> (T JPEG frames | None, reason, detail)."""
    path, source, options, max_pixels = args
    # Imported here: PyAV is the optional `video` extra, which image prepares and the rest of
    # vljax do without; the prepare command checks that it is installed before any work.
    import av

    if not os.path.exists(path):
        return None, "missing file", path
    if os.path.getsize(path) == 0:
        return None, "empty file", path
    try:
        av.open(path).close()
    except (av.FFmpegError, OSError, ValueError) as e:
        return None, "not a video", f"{type(e).__name__}: {e}"
    try:
        return _read_frames(av, path, source, options, max_pixels)
    except (av.FFmpegError, OSError, ValueError, EOFError) as e:
        return None, "unreadable video", f"{type(e).__name__}: {e}"


def _read_frames(av, path, source, options: VideoOptions, max_pixels):
    with av.open(path) as container:
        if not container.streams.video:
            return None, "no video stream", f"{len(container.streams)} other streams"
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        if w * h > max_pixels:
            return None, "too many pixels", f"{w}x{h} = {w * h} pixels > --max-pixels {max_pixels}"
        # Demuxing reads packets without decoding them; the last one is an empty flush packet.
        pts = [p.pts for p in container.demux(stream) if p.size]
    if not pts:
        return None, "no frames", "the video stream holds no frames"
    timestamps = _timestamps(pts, stream)
    indices = sample_indices(options, timestamps, clip_rng(options.seed, source))
    wanted, last = set(indices), max(indices)
    kept: dict[int, bytes] = {}
    decoded = 0
    with av.open(path) as container:
        # Decoders return frames in presentation order, the order of the sorted timestamps.
        for i, frame in enumerate(container.decode(container.streams.video[0])):
            decoded = i + 1
            if i in wanted:
                kept[i] = _jpeg(frame.to_image(), options.frame_size)
            if i >= last:
                break
    if len(kept) < len(wanted):
        return None, "unreadable video", f"decoded {decoded} of the {len(pts)} frames it lists"
    return [kept[i] for i in indices], "", ""


def _timestamps(pts: list[int | None], stream) -> list[float]:
    """Presentation times in seconds, ascending (packets come in decode order, which B-frames
    reorder); from the frame rate where the container gives no times."""
    if all(p is not None for p in pts) and stream.time_base is not None:
        return [float(p * stream.time_base) for p in sorted(pts)]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    step = 1 / float(rate) if rate else 1.0
    return [i * step for i in range(len(pts))]


def _jpeg(img: Image.Image, frame_size: int) -> bytes:
    img = img.convert("RGB")
    w, h = img.size
    if min(w, h) > frame_size:
        s = frame_size / min(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
