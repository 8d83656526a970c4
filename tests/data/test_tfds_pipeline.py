import json
import math

import grain.python as grain
import ml_collections
import numpy as np
import pytest
from corpus import write_manifest_corpus

from tests.data.conftest import small_config
from vljax.data import evalsets, pipeline, prepare
from vljax.data.mixture import MixtureSource, smooth_schedule
from vljax.data.tfds_source import TfdsSource


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    manifest, _ = write_manifest_corpus(root / "src", n_per_class=6)
    args = ["--manifest", manifest, "--name", "colours", "--data-dir", str(root / "d")]
    assert prepare.cli(args + ["--no-progress"]) == 0
    return str(root / "d")


def _cfg(data_dir, **train):
    c = small_config(data_dir=data_dir)
    c.batch_size = 4
    c.data.train.update({"dataset": "tfds:colours", "lang": "zh", **train})
    return c


def test_source_and_languages(data_dir, shapes_tokenizer):
    src = TfdsSource("colours", "train", data_dir)
    assert len(src) == 15 and src.classnames == ["blue", "green", "red"]
    ex = src[0]
    assert isinstance(ex["image"], bytes) and [lang for lang, _ in ex["captions"]] == ["en", "zh"]
    it = pipeline.make_train_iterator(_cfg(data_dir), shapes_tokenizer, seed=0)
    b = next(it)
    assert b["image"].shape == (4, 32, 32, 3) and b["tokens"].shape == (4, 16)
    texts = shapes_tokenizer.decode(b["tokens"])
    assert all(t.startswith("一") and not t.isascii() for t in texts), texts  # zh only


@pytest.mark.parametrize("workers", [0, 1])
def test_exact_resume_tfds(data_dir, shapes_tokenizer, workers):
    c = _cfg(data_dir, lang="any")
    c.data.num_workers = workers
    it = pipeline.make_train_iterator(c, shapes_tokenizer, seed=0)
    for _ in range(5):  # past the end of an epoch (15 examples, batches of 4)
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    expected = [next(it) for _ in range(4)]
    fresh = pipeline.make_train_iterator(c, shapes_tokenizer, seed=0)
    fresh.set_state(state)
    for a, b in zip(expected, [next(fresh) for _ in range(4)], strict=True):
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["tokens"], b["tokens"])


def test_several_captions_sampled_by_seed(shapes_tokenizer):
    t = pipeline.TrainTransform(shapes_tokenizer, 32, 16, None, pipeline.preprocess.Augment())
    el = {
        "image": np.zeros((32, 32, 3), np.uint8),
        "captions": {"en": ["a big red circle", "a small blue square"]},
    }
    seen = {
        shapes_tokenizer.decode(t.random_map(el, np.random.default_rng(s))["tokens"])
        for s in range(20)
    }
    assert seen == {"a big red circle", "a small blue square"}
    again = [
        shapes_tokenizer.decode(t.random_map(el, np.random.default_rng(s))["tokens"])
        for s in range(5)
    ]
    assert again == [
        shapes_tokenizer.decode(t.random_map(el, np.random.default_rng(s))["tokens"])
        for s in range(5)
    ]


def test_missing_language_is_a_clear_error(data_dir, shapes_tokenizer):
    it = pipeline.make_train_iterator(_cfg(data_dir, lang="de"), shapes_tokenizer, seed=0)
    with pytest.raises(Exception, match="no caption in languages"):
        next(it)


def test_unknown_dataset_errors(tmp_path, shapes_tokenizer):
    c = _cfg(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="vljax prepare"):
        pipeline.make_train_iterator(c, shapes_tokenizer, seed=0)
    c.data.train.dataset = "tfds:colours:nope"
    c.data.data_dir = None
    with pytest.raises(ValueError, match="data_dir"):
        pipeline.make_train_iterator(c, shapes_tokenizer, seed=0)


def test_mixture_weights_within_sampling_error():
    a, b = list(range(300)), list(range(1000, 1050))
    mix = MixtureSource({"a": a, "b": b}, {"a": 0.7, "b": 0.3})
    assert len(mix) % 1000 == 0 and len(mix) >= 50 / 0.3
    assert np.bincount(smooth_schedule([0.7, 0.3])).tolist() == [700, 300]
    # Every example of each part is reachable, and parts cycle independently.
    assert {mix[i] for i in range(len(mix))} == set(a) | set(b)
    sampler = grain.IndexSampler(
        len(mix), grain.NoSharding(), shuffle=True, num_epochs=None, seed=5
    )
    n = 3000
    from_b = sum(mix[sampler[i].record_key] >= 1000 for i in range(n))
    sd = math.sqrt(n * 0.3 * 0.7)
    assert abs(from_b - 0.3 * n) < 4 * sd, from_b


def test_mixture_pipeline(data_dir, shapes_tokenizer):
    c = _cfg(data_dir, lang="en")
    c.data.train.size = 100
    c.data.train.dataset = "tfds:colours=0.5,shapes=0.5"
    b = next(pipeline.make_train_iterator(c, shapes_tokenizer, seed=0))
    assert b["image"].shape == (4, 32, 32, 3)
    caps = list(pipeline.train_captions(c, 10))
    assert len(caps) == 10 and any("picture" in x for x in caps)
    spellings = ['{"tfds:colours": 0.5, "shapes": 0.5}', {"tfds:colours": 0.5, "shapes": 0.5}]
    for spec in spellings:
        c.data.train = ml_collections.ConfigDict({**c.data.train.to_dict(), "dataset": spec})
        assert repr(pipeline.make_source(spec, c)) == repr(
            pipeline.make_source("tfds:colours=0.5,shapes=0.5", c)
        )


def test_eval_sets_from_prepared_split(data_dir):
    c = _cfg(data_dir)
    zs = evalsets.load_eval_set(dict(type="zeroshot", dataset="tfds:colours:test", lang="en"), c)
    assert zs["images"].shape == (3, 32, 32, 3) and zs["images"].dtype == np.uint8
    assert zs["classnames"] == ["blue", "green", "red"] and zs["templates"]
    names = [zs["classnames"][i] for i in zs["labels"]]
    colour = {"red": 0, "green": 1, "blue": 2}
    for img, name in zip(zs["images"], names, strict=True):
        assert np.argmax(img.reshape(-1, 3).mean(0)) == colour[name]
    rt = evalsets.load_eval_set(
        dict(type="retrieval", dataset="tfds:colours:train", lang="zh", templates=["{}"]), c
    )
    assert len(rt["captions"]) == 15 and all(x.startswith("一张") for x in rt["captions"])
    custom = evalsets.load_eval_set(
        dict(dataset="tfds:colours:test", type="zeroshot", classnames=["b", "g", "r"]), c
    )
    assert custom["classnames"] == ["b", "g", "r"]


def test_tokenizer_cli_on_prepared(data_dir, tmp_path):
    from vljax.data import tokenizer

    out = tmp_path / "zh.model"
    args = ["train", "--dataset", "tfds:colours", "--data-dir", data_dir, "--vocab-size", "64"]
    assert tokenizer.cli(args + ["--out", str(out), "--lang", "zh", "--lowercase"]) == 0
    tok = tokenizer.Tokenizer(out)
    assert tok.decode(tok.encode(["一张红色的图片"], 16)[0]) == "一张红色的图片"
    missing = ["train", "--dataset", "tfds:nope", "--data-dir", data_dir, "--vocab-size", "64"]
    assert tokenizer.cli(missing + ["--out", str(tmp_path / "x.model")]) == 2
