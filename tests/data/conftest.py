"""Shared fixtures for the data tests: a tiny shapes config and a tokenizer trained on it."""

import ml_collections
import pytest

from vljax.data import tokenizer
from vljax.data.shapes import ShapesSource


def small_config(**data):
    c = ml_collections.ConfigDict()
    c.seed = 3
    c.batch_size = 8
    c.model = ml_collections.ConfigDict(
        dict(image=dict(image_size=32), text=dict(max_len=16, vocab_size=256))
    )
    c.tokenizer = ml_collections.ConfigDict(
        dict(model=ml_collections.config_dict.placeholder(str), vocab_size=256, lowercase=False)
    )
    c.data = ml_collections.ConfigDict(
        dict(
            data_dir=ml_collections.config_dict.placeholder(str),
            train=dict(dataset="shapes", size=500, lang="en"),
            num_workers=0,
            prefetch=2,
        )
    )
    c.data.update(data)
    return c


@pytest.fixture(scope="session")
def shapes_tokenizer(tmp_path_factory):
    src = ShapesSource("train", size=3000, seed=0)
    texts = [t for i in range(len(src)) for t in src.captions(i).values()]
    path = tmp_path_factory.mktemp("tok") / "shapes.model"
    return tokenizer.train_tokenizer(texts, path, vocab_size=512)
