"""Tokenizer parity: the exported tokenizer.json gives vljax's ids, padding and truncation."""

import random

import numpy as np
import pytest

from tests.export.helpers import CHARS_ZH, captions, transformers
from vljax.data.tokenizer import Tokenizer, train_tokenizer
from vljax.export.hf_tokenizer import HFTokenizer, write_hf_tokenizer

MAX_LEN = 16

STRINGS = [
    "a red circle",
    "",
    " ",
    "   leading and trailing   ",
    "two  spaces\tand\ttabs\nand newlines",
    "A Big GREEN Square",
    "红色的圆形在左边",
    "一个大的绿色圆形在一个大的绿色十字形的上面",
    "mixed 红色 and english 123",
    "ＦＵＬＬ-width １２３ and ﬁ ligature ㎏",
    "“curly quotes” — dashes… 。、",
    "unknown chars: 🙂 ∑ Ω ß ü é",
    "a </s> <pad> <unk> b",
    "a red circle " * 30,  # longer than the context
    "x" * 200,
    "!!!???...",
]


def _random_strings(n=150, seed=0):
    rnd = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCXYZ,.!?0123456789" + CHARS_ZH + "éü🙂  "
    return ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60))) for _ in range(n)]


@pytest.fixture(scope="module", params=["unigram", "bpe", "lowercase", "punct"])
def tokenizer_pair(request, unigram_tokenizer, bpe_tokenizer, tmp_path_factory):
    kind = request.param
    if kind == "unigram":
        path = unigram_tokenizer
    elif kind == "bpe":
        path = bpe_tokenizer
    else:
        path = str(tmp_path_factory.mktemp("tok") / f"{kind}.model")
        train_tokenizer(
            captions(seed=1), path, vocab_size=300, lowercase=True, normalize_punct=kind == "punct"
        )
    out = tmp_path_factory.mktemp(f"hf_tok_{kind}")
    write_hf_tokenizer(path, str(out), MAX_LEN)
    return Tokenizer(path), str(out)


def test_auto_tokenizer_gives_vljax_ids(tokenizer_pair):
    vljax_tok, folder = tokenizer_pair
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    texts = STRINGS + _random_strings()
    ours = vljax_tok.encode(texts, MAX_LEN)
    enc = hf(texts, padding="max_length", truncation=True, return_tensors="np")
    bad = [(t, a, b) for t, a, b in zip(texts, ours, enc["input_ids"]) if (a != b).any()]
    assert not bad, bad[:3]
    np.testing.assert_array_equal(enc["attention_mask"], (ours != 0).astype(np.int64))
    # max_length defaults to the model's context: the same call without max_length works.
    assert hf.model_max_length == MAX_LEN


def test_hf_tokenizer_wrapper_reads_exported_folder(tokenizer_pair):
    vljax_tok, folder = tokenizer_pair
    texts = STRINGS + _random_strings(50, seed=3)
    np.testing.assert_array_equal(
        HFTokenizer(folder).encode(texts, 12), vljax_tok.encode(texts, 12)
    )


def test_wrong_ids_are_refused(tmp_path):
    import io

    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(captions(300)), model_writer=buf, vocab_size=100, minloglevel=2
    )
    (tmp_path / "default.model").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="pad_id"):
        write_hf_tokenizer(str(tmp_path / "default.model"), str(tmp_path / "out"), 8)


def _bytes_to_unicode():
    """GPT-2 / CLIP byte -> printable unicode map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def test_hf_tokenizer_wraps_a_clip_bpe_tokenizer(tmp_path):
    """Import side: a CLIP byte-level BPE tokenizer.json behind vljax's encode(texts, max_len)."""
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges = [("r", "e"), ("re", "d</w>"), ("c", "i"), ("ci", "r"), ("l", "e</w>")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=merges)
    tok.save_pretrained(tmp_path)
    texts = ["a red circle", "", "RED red", "红色 circle", "a red circle " * 10]
    want = tok(texts, padding="max_length", truncation=True, max_length=10)["input_ids"]
    import pickle

    got = pickle.loads(pickle.dumps(HFTokenizer(str(tmp_path)))).encode(texts, 10)
    np.testing.assert_array_equal(got, np.array(want))
    assert got[0].tolist()[:1] == [0] and 1 in got[0].tolist()


def test_siglip_sentencepiece_folder_is_not_mistaken_for_a_vljax_export(
    unigram_tokenizer, tmp_path
):
    """SigLIP's spiece.model has vljax's ids, but its tokenizer lowercases, strips punctuation
    and pads with EOS: such folders go through transformers' tokenizer, not vljax's."""
    from transformers import SiglipTokenizer

    from vljax.export.hf_tokenizer import is_vljax_export
    from vljax.export.hf_tokenizer import load_tokenizer as load_folder_tokenizer

    SiglipTokenizer(vocab_file=unigram_tokenizer, model_max_length=MAX_LEN).save_pretrained(
        tmp_path
    )
    assert not is_vljax_export(str(tmp_path))
    tok = load_folder_tokenizer(str(tmp_path))
    assert isinstance(tok, HFTokenizer)
    ids = tok.encode(["A Red Circle!", ""], MAX_LEN)
    hf = SiglipTokenizer.from_pretrained(tmp_path)
    want = hf(["A Red Circle!", ""], padding="max_length", truncation=True, max_length=MAX_LEN)
    np.testing.assert_array_equal(ids, np.array(want["input_ids"]))
    assert ids[1, -1] == hf.pad_token_id == 1


def test_vljax_export_folder_is_recognised(tokenizer_pair):
    from vljax.export.hf_tokenizer import is_vljax_export
    from vljax.export.hf_tokenizer import load_tokenizer as load_folder_tokenizer

    _, folder = tokenizer_pair
    assert is_vljax_export(folder)
    assert isinstance(load_folder_tokenizer(folder), Tokenizer)


def test_load_tokenizer_dispatches(tokenizer_pair, tmp_path):
    from transformers import SiglipTokenizer

    from vljax.export.hf_tokenizer import load_tokenizer

    vljax_tok, folder = tokenizer_pair
    assert isinstance(load_tokenizer(vljax_tok.path), Tokenizer)
    assert isinstance(load_tokenizer(folder), Tokenizer)  # a vljax export folder
    SiglipTokenizer(vocab_file=vljax_tok.path).save_pretrained(tmp_path)
    assert isinstance(load_tokenizer(str(tmp_path)), HFTokenizer)
