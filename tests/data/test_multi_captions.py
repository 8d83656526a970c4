"""The batch field multi_tokens [B, K, L] (data.train.multi_captions): one caption per language
in the order of data.train.lang, or sampled sentences of the picked caption; absent captions
are all-PAD rows; bad settings and examples are refused with the fix named."""

import numpy as np
import pytest

from tests.data.conftest import small_config
from vljax.config import apply_override, validate
from vljax.data import captions, pipeline, preprocess
from vljax.data.shapes_long import ShapesLongSource
from vljax.errors import ConfigError, DataError
from vljax.token_ids import PAD_ID

FIELDS = ("image", "multi_tokens")
NO_AUG = preprocess.Augment(crop_scale=(1, 1), crop_ratio=(1, 1), brightness=0, contrast=0)


def transform(tok, langs, mode="languages", k=None, aug=NO_AUG, max_len=16):
    return pipeline.TrainTransform(
        tok, 32, max_len, langs, aug, FIELDS, multi_captions=mode, captions_per_example=k
    )


def element(captions):
    return dict(image=np.zeros((32, 32, 3), np.uint8), captions=captions)


def decoded(tok, rows):
    """Caption texts of int32 [K, L], None for an all-PAD row."""
    return [tok.decode(r) if np.any(r != PAD_ID) else None for r in rows]


def test_languages_in_the_order_of_lang_and_absent_ones_padded(shapes_tokenizer):
    en, zh = "a big red circle", "一个大的红色圆形"
    both = element({"en": en, "zh": zh})
    rng = np.random.default_rng(0)
    out = transform(shapes_tokenizer, ("en", "zh")).random_map(both, rng)
    assert set(out) == set(FIELDS)  # no tokens field: the method did not ask for it
    assert out["multi_tokens"].shape == (2, 16) and out["multi_tokens"].dtype == np.int32
    assert decoded(shapes_tokenizer, out["multi_tokens"]) == [en, zh]
    out = transform(shapes_tokenizer, ("zh", "en")).random_map(both, rng)
    assert decoded(shapes_tokenizer, out["multi_tokens"]) == [zh, en]
    only_en = element({"en": "a small blue square"})
    rows = transform(shapes_tokenizer, ("en", "zh")).random_map(only_en, rng)["multi_tokens"]
    assert decoded(shapes_tokenizer, rows) == ["a small blue square", None]
    assert np.all(rows[1] == PAD_ID)
    with pytest.raises(DataError, match="no caption in languages"):
        transform(shapes_tokenizer, ("de", "fr")).random_map(both, rng)


def test_a_language_with_several_captions_gets_one_picked_by_the_seed(shapes_tokenizer):
    several = element({"en": ["a big red circle", "a small red circle"], "zh": "一个大的红色圆形"})
    t = transform(shapes_tokenizer, ("en", "zh"))
    picks = [
        decoded(shapes_tokenizer, t.random_map(several, np.random.default_rng(s))["multi_tokens"])
        for s in range(8)
    ]
    assert {p[0] for p in picks} == {"a big red circle", "a small red circle"}
    assert all(p[1] == "一个大的红色圆形" for p in picks)
    again = t.random_map(several, np.random.default_rng(3))["multi_tokens"]
    assert decoded(shapes_tokenizer, again) == picks[3]


def test_sentences_sampled_with_the_seed_in_caption_order(shapes_tokenizer):
    text = "a big red circle. a small blue square. a big green cross. a small yellow triangle."
    parts = captions.sentences(text)
    assert parts == ["a big red circle.", "a small blue square.", "a big green cross.",
                     "a small yellow triangle."]  # fmt: skip
    encoded = [tuple(r) for r in shapes_tokenizer.encode(parts, 12)]
    t = transform(shapes_tokenizer, ("en",), "sentences", k=2, max_len=12)
    outs = [t.random_map(element({"en": text}), np.random.default_rng(s)) for s in range(12)]
    picks = [tuple(encoded.index(tuple(r)) for r in o["multi_tokens"]) for o in outs]
    assert all(a < b for a, b in picks)  # two distinct sentences, in the caption's order
    assert len(set(picks)) > 2  # the seed varies the pick
    same = t.random_map(element({"en": text}), np.random.default_rng(5))
    np.testing.assert_array_equal(same["multi_tokens"], outs[5]["multi_tokens"])
    np.testing.assert_array_equal(same["image"], outs[5]["image"])
    # Fewer sentences than K: all of them, then all-PAD rows.
    short = transform(shapes_tokenizer, ("en",), "sentences", k=4).random_map(
        element({"en": "a big red circle. a small blue square."}), np.random.default_rng(0)
    )["multi_tokens"]
    assert [r is None for r in decoded(shapes_tokenizer, short)] == [False, False, True, True]
    with pytest.raises(DataError, match="has no sentence"):
        t.random_map(element({"en": "   "}), np.random.default_rng(0))


def test_no_flip_when_any_caption_says_left_or_right(shapes_tokenizer):
    """Only the Chinese caption says 左 (left): the image must keep its sides."""
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, :16] = (255, 0, 0)
    ex = dict(image=img, captions={"en": "a red square above a blue one", "zh": "红色在蓝色的左边"})
    flippy = preprocess.Augment(crop_scale=(1, 1), crop_ratio=(1, 1), brightness=0, contrast=0)
    for langs, flips in ((("en",), True), (("en", "zh"), False)):
        t = transform(shapes_tokenizer, langs, aug=flippy)
        outs = [t.random_map(ex, np.random.default_rng(s))["image"] for s in range(30)]
        assert any(o[:, :8, 0].mean() < 100 for o in outs) == flips


def test_batches_of_the_shapes_data(shapes_tokenizer):
    c = small_config()
    c.data.train.lang = "en,zh"
    batch = next(pipeline.make_train_iterator(c, shapes_tokenizer, seed=0, fields=FIELDS))
    assert batch["multi_tokens"].shape == (8, 2, 16) and set(batch) == set(FIELDS)
    assert np.all(np.any(batch["multi_tokens"] != PAD_ID, axis=-1))  # both languages present
    c.data.train.update(dataset="shapes_long_sentences", lang="en", multi_captions="sentences")
    c.data.train.captions_per_example = 3
    batch = next(pipeline.make_train_iterator(c, shapes_tokenizer, seed=0, fields=FIELDS))
    assert batch["multi_tokens"].shape == (8, 3, 16)
    first = shapes_tokenizer.decode(batch["multi_tokens"][0])
    assert all(s.startswith(("top", "bottom")) for s in first)
    grid = ShapesLongSource("train", size=2, sentences=True).captions(0)["en"]
    assert len(captions.sentences(grid)) == 4


def test_bad_settings_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="data.train.lang=en,zh"):
        pipeline.multi_caption_count("languages", None, 4)
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match="captions_per_example"):
            pipeline.multi_caption_count("sentences", ("en",), bad)
    c = small_config()
    apply_override(c, "data.train.multi_captions", "sentence")
    with pytest.raises(ConfigError, match="multi_captions=sentences"):
        validate(c)
