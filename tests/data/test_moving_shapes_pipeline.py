"""The training pipeline reads moving_shapes: batch field video, tokens of the English
caption, one augmentation per clip; images in a mixture with clips train as still clips."""

import jax
import numpy as np
import pytest

from tests.data.conftest import small_config
from tests.random_params import random_variables
from vljax.config import build_config
from vljax.data import pipeline, preprocess
from vljax.data.moving_shapes import MovingShapesSource
from vljax.data.shapes import ShapesSource
from vljax.errors import DataError
from vljax.methods import video_clip


def test_a_moving_shapes_batch_holds_uint8_clips_and_tokens(shapes_tokenizer):
    c = small_config(train=dict(dataset="moving_shapes", size=64, lang="en"))
    c.model.video.frames = 4
    batch = next(pipeline.make_train_iterator(c, shapes_tokenizer, 0, fields=("video", "tokens")))
    assert set(batch) == {"video", "tokens"}
    assert batch["video"].dtype == np.uint8 and batch["video"].shape == (8, 4, 32, 32, 3)
    assert batch["tokens"].shape == (8, 16)
    # Clips, not stills: some pixels change between frames in every clip.
    assert all(np.any(clip[0] != clip[-1]) for clip in batch["video"])


def test_every_frame_of_a_clip_gets_the_same_augmentation(shapes_tokenizer):
    """A crop, jitter and flip drawn per frame would make a still clip move; drawn once per
    clip, a clip of one frame repeated stays still, and tokens are the English caption's."""
    aug = preprocess.Augment(crop_scale=(0.5, 0.9), brightness=0.3, contrast=0.3, flip=True)
    t = pipeline.TrainTransform(
        shapes_tokenizer, 32, 16, ["en"], aug, fields=("video", "tokens"), frames=4
    )
    clip = MovingShapesSource("train", size=4, image_size=32, frames=4)[1]
    still = dict(clip, video=np.repeat(clip["video"][:1], 4, axis=0))
    for seed in range(4):
        out = t.random_map(still, np.random.default_rng(seed))["video"]
        assert out.shape == (4, 32, 32, 3)
        assert all(np.array_equal(out[0], f) for f in out[1:])
    tokens = t.random_map(clip, np.random.default_rng(0))["tokens"]
    np.testing.assert_array_equal(tokens, shapes_tokenizer.encode([clip["captions"]["en"]], 16)[0])


def test_a_dataset_without_clips_for_a_video_method_and_clips_for_an_image_method_are_refused(
    shapes_tokenizer,
):
    c = small_config(train=dict(dataset="shapes", size=64, lang="en"))
    with pytest.raises(DataError, match="needs video clips.*moving_shapes"):
        pipeline.make_train_iterator(c, shapes_tokenizer, 0, fields=("video", "tokens"))
    c.data.train.dataset = "moving_shapes"
    with pytest.raises(DataError, match="only a video method reads"):
        pipeline.make_train_iterator(c, shapes_tokenizer, 0, fields=("image", "tokens"))


def test_an_image_in_a_video_batch_is_the_image_pipelines_image_t_times(shapes_tokenizer):
    """A mixture's image example: the augmented image that an image method would get from the
    same seed, repeated T times (a still clip)."""
    aug = preprocess.Augment(crop_scale=(0.5, 0.9), brightness=0.3, contrast=0.3)
    as_video = pipeline.TrainTransform(
        shapes_tokenizer, 32, 16, ["en"], aug, fields=("video", "tokens"), frames=4
    )
    as_image = pipeline.TrainTransform(shapes_tokenizer, 32, 16, ["en"], aug)
    element = ShapesSource("train", size=4, image_size=48)[2]
    for seed in range(3):
        video = as_video.random_map(element, np.random.default_rng(seed))
        image = as_image.random_map(element, np.random.default_rng(seed))
        assert video["video"].shape == (4, 32, 32, 3)
        assert all(np.array_equal(f, image["image"]) for f in video["video"])
        np.testing.assert_array_equal(video["tokens"], image["tokens"])


def test_images_in_a_mixed_batch_embed_as_one_frame_videos_under_mean_pooling(shapes_tokenizer):
    """shapes + moving_shapes in one run: one [B, T, S, S, 3] batch of clips and still clips,
    `video_frames` 1 for each still clip (an image) and T for each clip; with temporal=mean a
    still clip embeds as its image does (the 1-frame video). Every temporal module, with
    params far from init: tests/methods/test_video_frame_mask.py."""
    c = build_config("configs/video_clip.py:tiny", [("model.video.temporal", "mean")])
    c.data.train.update(dataset='{"shapes": 0.5, "moving_shapes": 0.5}', size=64)
    c.model.text.update(max_len=16, vocab_size=512)
    c.data.num_workers = 0
    fields = ("video", "video_frames", "tokens")
    batch = next(pipeline.make_train_iterator(c, shapes_tokenizer, 0, fields=fields))
    video = batch["video"]
    assert video.dtype == np.uint8 and video.shape == (16, 4, 32, 32, 3)
    still = np.array([all(np.array_equal(clip[0], f) for f in clip[1:]) for clip in video])
    assert 3 <= still.sum() <= 13  # about half of each kind
    assert batch["video_frames"].dtype == np.int32
    np.testing.assert_array_equal(batch["video_frames"], np.where(still, 1, 4))

    model = video_clip.build_model(c.model)
    params = random_variables(
        model, video_clip.example_batch(c.model, 1)["video"], method="encode_videos"
    )
    pixels = preprocess.normalize(video[still])

    counts = batch["video_frames"][still]

    @jax.jit
    def embeddings(clips, counts):
        return (
            model.apply(params, clips, counts=counts, method="encode_videos"),
            model.apply(params, clips[:, 0], method="encode_images"),  # 1-frame videos
        )

    as_clip, as_image = embeddings(pixels, counts)
    np.testing.assert_allclose(as_clip, as_image, rtol=0, atol=1e-6)
