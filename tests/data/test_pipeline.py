import json

import numpy as np
import pytest

from tests.data.conftest import small_config
from vljax.data import captions, pipeline, preprocess
from vljax.errors import DataError


def _take(it, n):
    return [next(it) for _ in range(n)]


def _same(xs, ys):
    return all(
        np.array_equal(a["image"], b["image"]) and np.array_equal(a["tokens"], b["tokens"])
        for a, b in zip(xs, ys, strict=True)
    )


def test_batches(shapes_tokenizer):
    c = small_config()
    b = next(pipeline.make_train_iterator(c, shapes_tokenizer, seed=0))
    # uint8 pixels: the train step normalises them on device
    assert b["image"].shape == (8, 32, 32, 3) and b["image"].dtype == np.uint8
    assert b["tokens"].shape == (8, 16) and b["tokens"].dtype == np.int32
    assert ((b["tokens"] == 1).sum(1) == 1).all()  # exactly one EOS per row


def test_seeded(shapes_tokenizer):
    c = small_config()
    a = _take(pipeline.make_train_iterator(c, shapes_tokenizer, seed=0), 2)
    b = _take(pipeline.make_train_iterator(c, shapes_tokenizer, seed=0), 2)
    d = _take(pipeline.make_train_iterator(c, shapes_tokenizer, seed=1), 2)
    assert _same(a, b) and not _same(a, d)


def test_exact_resume(shapes_tokenizer):
    # With a worker process: tests/data/test_tfds_pipeline.py (spawning one costs ~10 s).
    c = small_config(num_workers=0)
    it = pipeline.make_train_iterator(c, shapes_tokenizer, seed=0)
    _take(it, 3)
    state = json.loads(json.dumps(it.get_state()))  # must survive JSON
    expected = _take(it, 4)
    fresh = pipeline.make_train_iterator(c, shapes_tokenizer, seed=0)
    fresh.set_state(state)
    assert _same(_take(fresh, 4), expected)


def test_resume_mismatch_errors(shapes_tokenizer):
    c = small_config()
    it = pipeline.make_train_iterator(c, shapes_tokenizer, seed=0)
    next(it)
    state = it.get_state()
    other = small_config()
    other.data.train.size = 400
    with pytest.raises(ValueError, match="does not match"):
        pipeline.make_train_iterator(other, shapes_tokenizer, seed=0).set_state(state)
    other = small_config()
    other.batch_size = 16
    with pytest.raises(ValueError, match="global_batch: saved 8, now 16"):
        pipeline.make_train_iterator(other, shapes_tokenizer, seed=0).set_state(state)


def test_the_global_batch_does_not_depend_on_the_process_rows(shapes_tokenizer):
    """Process i of P loads rows [i B / P, (i + 1) B / P) of the same global batches, and its
    state (the batches consumed) resumes on any other split: 2 processes -> 1 here."""
    c = small_config(num_workers=0)
    whole = _take(pipeline.make_train_iterator(c, shapes_tokenizer, seed=0), 4)
    halves = [
        pipeline.make_train_iterator(c, shapes_tokenizer, seed=0, rows=r)
        for r in (((0, 4),), ((4, 8),))
    ]
    for t in range(2):
        parts = [next(h) for h in halves]
        joined = {k: np.concatenate([p[k] for p in parts]) for k in ("image", "tokens")}
        assert _same([joined], whole[t : t + 1])
    state = json.loads(json.dumps(halves[1].get_state()))
    assert state["batches"] == 2
    one = pipeline.make_train_iterator(c, shapes_tokenizer, seed=0)
    one.set_state(state)
    assert _same(_take(one, 2), whole[2:])


def test_a_state_saved_before_the_topology_free_order_resumes_at_its_batch(shapes_tokenizer):
    """Version 1: grain's loader state of one process (here after 3 batches, no workers),
    whose order is the new one."""
    c = small_config(num_workers=0)
    whole = _take(pipeline.make_train_iterator(c, shapes_tokenizer, seed=0), 5)
    loader = {"version": 2, "last_seen_indices": {"0": 23}, "last_worker_index": -1,
              "worker_count": 0, "sampler": "...", "data_source": "..."}  # fmt: skip
    v1 = dict(version=1, process_count=1, process_index=0, num_workers=0, loader=loader)
    it = pipeline.make_train_iterator(c, shapes_tokenizer, seed=0)
    it.set_state(v1)
    assert _same(_take(it, 2), whole[3:])


def test_global_entries_with_worker_processes():
    """With W workers grain's t-th batch is worker t % W's batch t // W, whose entries are
    every W-th local entry; they map to rows [start, stop) of global batch t."""
    s = pipeline.GlobalBatchSampler(None, global_batch=8, rows=((4, 8),), workers=2)
    local = range(16)  # 4 local batches of 4 rows
    by_batch = {}
    for k in local:
        w, p = k % 2, k // 2
        by_batch.setdefault((p // 4) * 2 + w, []).append(s.global_entry(k))
    assert by_batch == {t: [t * 8 + 4 + j for j in range(4)] for t in range(4)}


def test_train_captions_and_languages():
    c = small_config()
    caps = list(pipeline.train_captions(c, 50))
    assert len(caps) == 50 and all(x.isascii() for x in caps)
    c.data.train.lang = "any"
    caps = list(pipeline.train_captions(c, 50))
    assert any(not x.isascii() for x in caps) and any(x.isascii() for x in caps)


def test_caption_candidates():
    cc = captions.caption_candidates
    assert cc({"en": "a", "zh": "b"}, ("zh",)) == ["b"]
    assert cc({"en": ["a", "c"], "zh": "b"}, None) == ["a", "c", "b"]
    assert cc(["x", "y"], None) == ["x", "y"]
    assert cc([("en", "x"), ("de", "y")], ("de",)) == ["y"]


def _asym_element(text):
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, :16] = (255, 0, 0)  # left half red, right half blue
    img[:, 16:] = (0, 0, 255)
    return {"image": img, "captions": {"en": text}}


@pytest.mark.parametrize(
    "text,flippable",
    [
        ("a red square to the left of a blue square", False),
        ("红色在蓝色的左边", False),
        ("the blue one is on the RIGHT", False),
        ("a red square above a blue square", True),
        ("a bright square", True),  # "bright" contains "right" but is not the word
    ],
)
def test_no_flip_when_caption_says_left_or_right(shapes_tokenizer, text, flippable):
    aug = preprocess.Augment(crop_scale=(1, 1), crop_ratio=(1, 1), brightness=0, contrast=0)
    t = pipeline.TrainTransform(shapes_tokenizer, 32, 16, None, aug)
    flipped = 0
    for s in range(40):
        out = t.random_map(_asym_element(text), np.random.default_rng(s))["image"]
        left_is_red = out[:, :8, 0].mean() > out[:, :8, 2].mean()
        flipped += not left_is_red
    assert (flipped > 0) == flippable


def test_short_tokens_are_the_short_caption_of_the_picked_language(shapes_tokenizer):
    """Long-CLIP's batch field: the short caption in the long caption's language; a dataset
    without short captions is refused with the fix named."""
    t = pipeline.TrainTransform(shapes_tokenizer, 32, 16, None, preprocess.Augment(), fields=(
        "image", "tokens", "short_tokens"))  # fmt: skip
    image = np.zeros((32, 32, 3), np.uint8)
    element = dict(
        image=image,
        captions={"en": "a big red circle", "zh": "一个大的红色圆形"},
        short_captions={"en": "a red circle", "zh": "红色圆形"},
    )
    for seed in range(6):
        out = t.random_map(element, np.random.default_rng(seed))
        long_text = shapes_tokenizer.decode(out["tokens"])
        lang = "en" if long_text == "a big red circle" else "zh"
        want = shapes_tokenizer.encode([element["short_captions"][lang]], 16)[0]
        np.testing.assert_array_equal(out["short_tokens"], want)
    with pytest.raises(DataError, match="shapes_long"):
        t.random_map(dict(image=image, captions={"en": "a"}), np.random.default_rng(0))


def test_rows_in_several_blocks():
    """A process whose devices hold rows in several blocks (a TPU pod's device order) loads
    them concatenated in order, as make_array_from_process_local_data reads them."""
    s = pipeline.GlobalBatchSampler(None, global_batch=8, rows=((0, 2), (4, 6)), workers=0)
    assert [s.global_entry(k) for k in range(8)] == [0, 1, 4, 5, 8, 9, 12, 13]
