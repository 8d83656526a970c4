"""Session fixtures for the export tests: SentencePiece tokenizers trained once."""

import pytest

from tests.export.helpers import captions


@pytest.fixture(scope="session")
def unigram_tokenizer(tmp_path_factory):
    from vljax.data.tokenizer import train_tokenizer

    path = tmp_path_factory.mktemp("tok") / "unigram.model"
    train_tokenizer(captions(), path, vocab_size=300)
    return str(path)


@pytest.fixture(scope="session")
def bpe_tokenizer(tmp_path_factory):
    """The shapes captions are a closed vocabulary: vljax trains BPE for them."""
    from vljax.data.shapes import ShapesSource
    from vljax.data.tokenizer import train_tokenizer

    src = ShapesSource("train", 1500, 0, 32)
    caps = [c for i in range(1500) for c in src[i]["captions"].values()]
    path = tmp_path_factory.mktemp("tok") / "bpe.model"
    train_tokenizer(caps, path, vocab_size=512)
    return str(path)
