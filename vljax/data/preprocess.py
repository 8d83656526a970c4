"""Image preprocessing: model input scaling, inference resize/crop, train augmentation.

Model input (docs/internals.md): float32 `[N, H, W, 3]` in [-1, 1], `x / 127.5 - 1` of the
uint8 RGB pixels (mean 0.5, std 0.5 per channel after `x / 255`). Training batches carry the
uint8 pixels; the jitted train step applies `normalize` on device.

Inference preprocessing of an image of any size, `inference_image(img, size)`, exactly (the
Hugging Face export reproduces it with CLIPImageProcessor(do_resize=True,
size={"shortest_edge": size}, resample=PIL.Image.BICUBIC, do_center_crop=True,
crop_size={"height": size, "width": size}, do_rescale=True, rescale_factor=1/255,
do_normalize=True, image_mean=[0.5]*3, image_std=[0.5]*3, do_convert_rgb=True)):

1. Convert to RGB with PIL `Image.convert("RGB")` (palette/LA/RGBA/CMYK/I;16 included; an
   alpha channel is dropped, not composited). 16-bit grayscale ("I;16", "I") is first scaled
   to 8 bit by `>> 8`.
2. Resize so the shorter side is `size`: with `(w, h)` the input size, `short = min(w, h)`,
   `long = max(w, h)`, the new long side is `int(size * long / short)` (truncated, as
   transformers' `get_resize_output_image_size`); the new short side is `size`. Resampling
   is `PIL.Image.resize(..., resample=Image.BICUBIC)` with PIL's default `reducing_gap=None`.
   The resize happens even when the size is unchanged (a no-op copy).
3. Centre crop `size x size`: `top = (new_h - size) // 2`, `left = (new_w - size) // 2`.
4. uint8 `[size, size, 3]`; `normalize` then gives the model input.

Train augmentation keeps captions true: a mild random resized crop (area fraction in
`crop_scale`, aspect ratio in `crop_ratio`, resized with BILINEAR straight from the crop box),
a brightness/contrast jitter that scales all channels alike (so hues, hence colour words,
stay; rounded to uint8), and a horizontal flip with probability 0.5 only when the caption has
no left/right word in any language (`mentions_left_right`). There is no vertical flip (it
would break "above"/"below" and upright shapes). A clip (`train_video`) gets one draw of
all of these for all its frames.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Words for left/right in the languages vljax's corpora use; matched case-insensitively on
# word boundaries (Latin scripts) or anywhere (CJK).
_LR_WORDS = (
    r"left|right|leftmost|rightmost|links|rechts|linke[nmrs]?|rechte[nmrs]?|gauche|droite|"
    r"izquierda|derecha|sinistra|destra|esquerda|direita|слева|справа|левый|правый"
)
_LR_RE = re.compile(rf"\b(?:{_LR_WORDS})\b|[左右]|ひだり|みぎ|왼쪽|오른쪽", re.IGNORECASE)


def mentions_left_right(text: str) -> bool:
    """True when text names left or right (so a horizontal flip would make it false)."""
    return bool(_LR_RE.search(text))


# Batch fields of uint8 pixels, image [B, H, W, 3] and video [B, T, H, W, 3]: the loader ships
# them as they are and the train step scales them with `normalize` on device.
PIXEL_FIELDS = ("image", "video")


def normalize(images):
    """uint8 [..., 3] -> float32 in [-1, 1] (x / 127.5 - 1). numpy or jax arrays."""
    return images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; 16/32-bit grayscale is scaled to 8 bit first."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.uint16) >> 8
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if img.mode == "I":
        arr = np.asarray(img, dtype=np.int64)
        arr = (arr >> 8) if arr.max() > 255 else arr
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def decode_image(data: bytes, draft_size: int | None = None) -> Image.Image:
    """Encoded bytes -> RGB PIL image. draft_size lets JPEG decode at a reduced scale that is
    still >= draft_size on both sides (train only: much faster for large JPEGs)."""
    img = Image.open(io.BytesIO(data))
    if draft_size and img.format == "JPEG":
        img.draft("RGB", (draft_size, draft_size))
    return to_rgb(img)


def inference_image(img, size: int) -> np.ndarray:
    """Any image (PIL, uint8 array, or encoded bytes) -> uint8 [size, size, 3]; see module doc."""
    if isinstance(img, bytes | bytearray):
        img = decode_image(bytes(img))
    elif isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    img = to_rgb(img)
    w, h = img.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    img = img.resize((new_w, new_h), resample=Image.BICUBIC)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8)


@dataclass(frozen=True)
class Augment:
    """Train augmentation parameters (see module doc)."""

    crop_scale: tuple[float, float] = (0.9, 1.0)
    crop_ratio: tuple[float, float] = (0.95, 1.05)
    brightness: float = 0.1  # multiplicative factor in [1 - b, 1 + b]
    contrast: float = 0.1  # factor in [1 - c, 1 + c] around the image mean
    flip: bool = True  # horizontal, only when the caption has no left/right word


def crop_box(rng: np.random.Generator, w: int, h: int, aug: Augment):
    """A random (left, top, right, bottom) float box of the given area fraction and aspect."""
    area = w * h * rng.uniform(*aug.crop_scale)
    log_r = rng.uniform(math.log(aug.crop_ratio[0]), math.log(aug.crop_ratio[1]))
    ratio = math.exp(log_r)
    cw = min(w, math.sqrt(area * ratio))
    ch = min(h, math.sqrt(area / ratio))
    left = rng.uniform(0, w - cw)
    top = rng.uniform(0, h - ch)
    return (left, top, left + cw, top + ch)


def train_image(img, rng: np.random.Generator, size: int, aug: Augment, flip_ok: bool):
    """PIL image or uint8 array -> augmented uint8 [size, size, 3] (`normalize` on device)."""
    return augment_frames([img], rng, size, aug, flip_ok)[0]


def train_video(frames, rng: np.random.Generator, size: int, aug: Augment, flip_ok: bool):
    """uint8 [T, H, W, 3] clip (or T PIL images of one size) -> augmented uint8
    [T, size, size, 3]: every frame gets the crop box, jitter factors and flip of one
    generator seeded from `rng`, each frame what `train_image` gives it from that generator,
    so motion and colour changes between frames stay what the caption says. The contrast
    pivots on each frame's own mean, as for images."""
    draws = np.random.default_rng(int(rng.integers(2**63)))
    return augment_frames(frames, draws, size, aug, flip_ok)


def augment_frames(frames, rng: np.random.Generator, size: int, aug: Augment, flip_ok: bool):
    """Images of one size (uint8 [H, W, 3] arrays or PIL images) -> uint8 [N, size, size, 3],
    with one draw from `rng` of the crop box, then the jitter factors and the flip, for all of
    them. The jitter runs on all the frames at once: a clip augments 3x faster than frame by
    frame as images."""
    first = frames[0]
    w, h = first.size if isinstance(first, Image.Image) else (first.shape[1], first.shape[0])
    box = crop_box(rng, w, h, aug)
    brightness, contrast, flip = jitter_draws(rng, aug, flip_ok)
    if box == (0, 0, size, size) and all(is_rgb_array(f) for f in frames):
        # The whole frame at its own size (procedural data, no crop): PIL's resize would
        # return a copy, so the arrays go straight to the flip and jitter.
        stacked = np.stack(frames)
        return jitter(stacked[:, :, ::-1] if flip else stacked, brightness, contrast)
    frames = [Image.fromarray(f) if isinstance(f, np.ndarray) else f for f in frames]
    resized = [f.resize((size, size), resample=Image.BILINEAR, box=box) for f in frames]
    if flip:
        resized = [f.transpose(Image.FLIP_LEFT_RIGHT) for f in resized]
    return jitter(np.stack([rgb_array(f) for f in resized]), brightness, contrast)


def is_rgb_array(f) -> bool:
    return isinstance(f, np.ndarray) and f.dtype == np.uint8 and f.ndim == 3 and f.shape[-1] == 3


def jitter_draws(rng, aug: Augment, flip_ok: bool) -> tuple[float, float, bool]:
    """(brightness factor, contrast factor, flip), drawn from `rng` in that order."""
    brightness = 1.0 + rng.uniform(-aug.brightness, aug.brightness)
    contrast = 1.0 + rng.uniform(-aug.contrast, aug.contrast)
    return brightness, contrast, bool(aug.flip and flip_ok and rng.random() < 0.5)


def rgb_array(img: Image.Image) -> np.ndarray:
    u = np.asarray(img)
    return u if u.ndim == 3 and u.shape[-1] == 3 else np.asarray(to_rgb(img))


def jitter(frames: np.ndarray, brightness: float, contrast: float) -> np.ndarray:
    """uint8 [N, H, W, 3] -> each image's (b * x - m) * c + m, rounded and clipped to
    [0, 255], with m the mean of b * x (every 4th pixel) of that image: one affine map of the
    uint8 values per image, applied as a 256-entry table (a single gather)."""
    b, c, n = brightness, contrast, len(frames)
    sample = frames[:, ::4, ::4].reshape(n, -1)
    # A sum of uint8 values is exact in int64 (and in float64), so this is each image's
    # float mean however it is summed.
    m = b * (sample.sum(axis=1, dtype=np.int64) / sample.shape[1])[:, None]
    lut = np.clip(np.rint(np.arange(256, dtype=np.float64) * (b * c) + m * (1.0 - c)), 0, 255)
    # Image i's values index its own table: one gather over the tables laid end to end.
    offsets = np.arange(n, dtype=np.intp)[:, None, None, None] * 256
    return np.take(lut.astype(np.uint8), frames + offsets)


def jitter_flip(img: Image.Image, rng, aug: Augment, flip_ok: bool) -> np.ndarray:
    """Brightness/contrast jitter and optional flip: PIL image -> uint8 [H, W, 3].

    Batches stay uint8 until the train step normalises them on device: a quarter of the
    bytes to stack, copy and transfer, and no float work on the loader's cores."""
    brightness, contrast, flip = jitter_draws(rng, aug, flip_ok)
    if flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return jitter(rgb_array(img)[None], brightness, contrast)[0]
