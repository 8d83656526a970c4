"""The training pipeline reads moving_shapes: batch field video, tokens of the English
caption, one augmentation per clip."""

import numpy as np
import pytest

from tests.data.conftest import small_config
from vljax.data import pipeline, preprocess
from vljax.data.moving_shapes import MovingShapesSource
from vljax.errors import DataError


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
    t = pipeline.TrainTransform(shapes_tokenizer, 32, 16, ["en"], aug, fields=("video", "tokens"))
    clip = MovingShapesSource("train", size=4, image_size=32, frames=4)[1]
    still = dict(clip, video=np.repeat(clip["video"][:1], 4, axis=0))
    for seed in range(4):
        out = t.random_map(still, np.random.default_rng(seed))["video"]
        assert out.shape == (4, 32, 32, 3)
        assert all(np.array_equal(out[0], f) for f in out[1:])
    tokens = t.random_map(clip, np.random.default_rng(0))["tokens"]
    np.testing.assert_array_equal(tokens, shapes_tokenizer.encode([clip["captions"]["en"]], 16)[0])


def test_a_video_method_on_image_data_names_the_dataset(shapes_tokenizer):
    t = pipeline.TrainTransform(
        shapes_tokenizer, 32, 16, None, preprocess.Augment(), fields=("video", "tokens")
    )
    element = dict(image=np.zeros((32, 32, 3), np.uint8), captions={"en": "a red circle"})
    with pytest.raises(DataError, match="moving_shapes"):
        t.random_map(element, np.random.default_rng(0))
