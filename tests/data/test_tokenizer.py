import pickle

import numpy as np
import pytest

from vljax.data import tokenizer
from vljax.data.tokenizer import EOS_ID, PAD_ID, Tokenizer, train_tokenizer


def _words_corpus(n=3000, seed=0):
    """Many distinct made-up words so that a unigram vocabulary of 200 is reachable."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    words = ["".join(rng.choice(letters, size=rng.integers(3, 9))) for _ in range(800)]
    return [" ".join(rng.choice(words, size=8)) for _ in range(n)]


def test_contract_eos_padding_truncation(shapes_tokenizer):
    tok = shapes_tokenizer
    assert tok.vocab_size <= 512
    pieces = tok.pieces("a big red circle")
    t = tok.encode(["a big red circle", ""], max_len=12)
    assert t.dtype == np.int32 and t.shape == (2, 12)
    n = len(pieces)
    assert t[0, n] == EOS_ID and (t[0, :n] > 2).all() and (t[0, n + 1 :] == PAD_ID).all()
    assert t[1, 0] == EOS_ID and (t[1, 1:] == PAD_ID).all()
    long = "from left to right: a big red circle, a small blue square and a small green cross"
    full = tok.encode([long], 64)[0]
    cut = tok.encode([long], 5)[0]
    assert cut[-1] == EOS_ID and np.array_equal(cut[:4], full[:4])
    assert (cut != PAD_ID).all()


def test_roundtrip_english_and_chinese(shapes_tokenizer):
    tok = shapes_tokenizer
    for text in [
        "a small purple triangle above a big orange cross",
        "一个大的红色圆形在一个小的蓝色正方形的左边",
    ]:
        ids = tok.encode([text], 64)
        assert tok.decode(ids[0]) == text
        assert tok.decode(ids) == [text]
        assert 2 not in ids  # no unknown pieces for text of the corpus


def test_whole_words_on_closed_vocabulary(shapes_tokenizer):
    assert shapes_tokenizer.pieces("a big red circle") == ["▁a", "▁big", "▁red", "▁circle"]


def test_unigram_options_and_pickle(tmp_path):
    texts = _words_corpus() + ["Hello World “quoted” — dash…"] * 20
    tok = train_tokenizer(texts, tmp_path / "u.model", 200, lowercase=True, normalize_punct=True)
    assert tok.vocab_size == 200
    assert np.array_equal(tok.encode(["HELLO World"], 16), tok.encode(["hello world"], 16))
    assert np.array_equal(tok.encode(["“quoted” — x…"], 16), tok.encode(['"quoted" - x...'], 16))
    clone = pickle.loads(pickle.dumps(tok))
    assert np.array_equal(clone.encode(texts[:3], 20), tok.encode(texts[:3], 20))
    cased = train_tokenizer(texts, tmp_path / "c.model", 200)
    assert not np.array_equal(cased.encode(["HELLO"], 8), cased.encode(["hello"], 8))


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="no non-empty texts"):
        train_tokenizer(["", "  "], tmp_path / "x.model", 100)
    with pytest.raises(FileNotFoundError, match="vljax tokenizer train"):
        Tokenizer(tmp_path / "missing.model")
    assert not (tmp_path / "x.model").exists()


def test_wrong_special_ids_rejected(tmp_path):
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_words_corpus(500)),
        model_prefix=str(tmp_path / "std"),
        vocab_size=100,
        minloglevel=2,
    )
    with pytest.raises(ValueError, match="pad, eos, unk, bos"):
        Tokenizer(tmp_path / "std.model")


def test_cli_shapes(tmp_path, capsys):
    out = tmp_path / "t.model"
    rc = tokenizer.cli(
        [
            "train",
            "--dataset",
            "shapes",
            "--vocab-size",
            "300",
            "--out",
            str(out),
            "--limit",
            "2000",
        ]
    )
    assert rc == 0 and out.exists()
    tok = Tokenizer(out)
    assert tok.decode(tok.encode(["一个小的绿色十字形"], 16)[0]) == "一个小的绿色十字形"
    assert tokenizer.cli(["train", "--dataset", "nope", "--vocab-size", "9", "--out", "x"]) == 2
