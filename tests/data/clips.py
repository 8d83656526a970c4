"""Generated video clips for the video tests: frame i of a clip is one flat colour,
PALETTE[i], so the frames a reader returns can be numbered back (`frame_numbers`)."""

import av
import numpy as np

# Frame i of a generated clip is PALETTE[i]: 12 colours at least 127 apart in one channel, so
# the nearest one identifies a frame after yuv420 + mpeg4 + JPEG.
PALETTE = np.array(
    [
        (255, 0, 0),
        (0, 255, 0),
        (0, 0, 255),
        (255, 255, 0),
        (255, 0, 255),
        (0, 255, 255),
        (255, 255, 255),
        (0, 0, 0),
        (128, 0, 0),
        (0, 128, 0),
        (0, 0, 128),
        (128, 128, 128),
    ]
)


def write_clip(path, n, size=32, rate=10, codec="mpeg4", first=0):
    """An n-frame clip at `path`, frame i coloured PALETTE[(first + i) % len(PALETTE)]."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(n):
            colour = PALETTE[(first + i) % len(PALETTE)].astype(np.uint8)
            rgb = np.broadcast_to(colour, (size, size, 3)).copy()
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())


def frame_numbers(frames):
    """The frame number each decoded frame shows (nearest palette colour of its mean)."""
    means = np.array([np.asarray(f).reshape(-1, 3).mean(0) for f in frames])
    return np.abs(means[:, None] - PALETTE[None]).sum(-1).argmin(-1).tolist()
