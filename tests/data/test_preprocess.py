import io

import numpy as np
from PIL import Image

from vljax.data import preprocess


def test_normalize():
    x = np.array([0, 127, 255], np.uint8)
    np.testing.assert_allclose(preprocess.normalize(x), [-1, 127 / 127.5 - 1, 1], atol=1e-7)


def test_inference_image_matches_reference():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (50, 80, 3), dtype=np.uint8)
    out = preprocess.inference_image(arr, 32)
    # Reference: shorter side 50 -> 32, long side int(32 * 80 / 50) = 51, bicubic, centre crop.
    ref = Image.fromarray(arr).resize((51, 32), Image.BICUBIC)
    left = (51 - 32) // 2
    ref = np.asarray(ref)[:, left : left + 32]
    assert out.shape == (32, 32, 3) and np.array_equal(out, ref)
    tall = preprocess.inference_image(arr.transpose(1, 0, 2), 32)
    assert tall.shape == (32, 32, 3)


def test_modes_to_rgb():
    for mode in ["L", "RGBA", "CMYK", "P", "I;16", "LA"]:
        img = Image.new(mode, (20, 10))
        out = preprocess.inference_image(img, 8)
        assert out.shape == (8, 8, 3) and out.dtype == np.uint8, mode
    g16 = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert np.asarray(preprocess.to_rgb(g16)).min() == 255


def test_decode_bytes_and_draft():
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 200, 30)).save(buf, "JPEG")
    img = preprocess.decode_image(buf.getvalue(), draft_size=64)
    assert img.mode == "RGB" and min(img.size) >= 64 and img.size[0] < 400


def test_train_image_keeps_colours():
    img = np.zeros((64, 64, 3), np.uint8)
    img[:] = (240, 220, 40)  # yellow stays yellow: channels scaled alike
    aug = preprocess.Augment(brightness=0.1, contrast=0.1)
    for s in range(10):
        x = preprocess.train_image(img, np.random.default_rng(s), 32, aug, True)
        assert x.dtype == np.uint8 and x.shape == (32, 32, 3)
        rgb = x.reshape(-1, 3).mean(0)
        assert rgb[0] > 180 and rgb[1] > 160 and rgb[2] < 60, rgb


def test_jitter_matches_float_formula():
    # An independent float64 evaluation of the documented map: clip(round((b x - m) c + m)).
    rng_img = np.random.default_rng(0)
    u = rng_img.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    aug = preprocess.Augment(brightness=0.2, contrast=0.3, flip=False)
    out = preprocess.jitter_flip(Image.fromarray(u), np.random.default_rng(7), aug, True)
    r = np.random.default_rng(7)
    b, c = 1 + r.uniform(-0.2, 0.2), 1 + r.uniform(-0.3, 0.3)
    m = b * u[::4, ::4].astype(np.float64).mean()
    want = np.clip(np.rint((b * u.astype(np.float64) - m) * c + m), 0, 255)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, want.astype(np.uint8))


def test_mentions_left_right():
    m = preprocess.mentions_left_right
    assert m("Left of it") and m("在右边") and m("links vom Haus")
    assert not m("a bright light") and not m("copyright") and not m("above")


def test_train_video_is_each_frame_augmented_as_an_image_with_one_draw():
    """A clip's frames get what `train_image` gives each frame from one generator seeded from
    the clip's draw (one crop box, jitter and flip for all), with and without a crop, flipped
    or not, as arrays or as PIL images."""
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (4, 20, 20, 3), dtype=np.uint8)
    no_crop = preprocess.Augment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    for aug in (preprocess.Augment(), no_crop):
        for seed in range(6):  # flips drawn both ways
            for size in (20, 16):
                seed_draw = np.random.default_rng(seed).integers(2**63)
                want = [
                    preprocess.train_image(f, np.random.default_rng(seed_draw), size, aug, True)
                    for f in clip
                ]
                for frames in (clip, [Image.fromarray(f) for f in clip]):
                    got = preprocess.train_video(
                        frames, np.random.default_rng(seed), size, aug, True
                    )
                    np.testing.assert_array_equal(got, np.stack(want))
