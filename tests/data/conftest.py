"""Shared fixtures for the data tests: a tiny shapes config and a tokenizer trained on it."""

import pytest

from configs import common
from vljax.data import tokenizer
from vljax.data.shapes import ShapesSource


def small_config(**data):
    """The declared defaults (configs/common.py) with a small model and shapes set."""
    c = common.base_config()
    c.seed = 3
    c.batch_size = 8
    c.model.image.image_size = 32
    c.model.text.update(max_len=16, vocab_size=256)
    c.tokenizer.vocab_size = 256
    c.data.train.size = 500
    c.data.update(data)
    return c


@pytest.fixture(scope="session")
def shapes_tokenizer(tmp_path_factory):
    src = ShapesSource("train", size=3000, seed=0)
    texts = [t for i in range(len(src)) for t in src.captions(i).values()]
    path = tmp_path_factory.mktemp("tok") / "shapes.model"
    return tokenizer.train_tokenizer(texts, path, vocab_size=512)
