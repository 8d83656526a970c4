"""SentencePiece tokenizer: the tokens contract, training, and `vljax tokenizer train`.

Contract (docs/internals.md): ids `pad = 0`, `eos = 1`, `unk = 2`, no BOS. A text is its
pieces followed by EOS; a text longer than `max_len - 1` pieces is cut to `max_len - 1`
pieces and still ends with EOS; shorter ones are right-padded with 0.

Normalisation lives inside the .model file (SentencePiece's normaliser), so every consumer of
the file (this class, transformers' converters) applies the same rules:
`lowercase=False` -> `nmt_nfkc`; `lowercase=True` -> `nmt_nfkc_cf` (case folding);
`normalize_punct=True` -> a rule table built here: per-character NFKC (+ case folding), curly
quotes -> straight quotes, dashes -> "-", "…" -> "...", "。" -> ".", "、" -> ",".
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np
import sentencepiece as spm

from vljax.data.pipeline import dataset_captions, train_captions
from vljax.errors import ConfigError
from vljax.token_ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID

PUNCT_MAP = {
    **dict.fromkeys("“”„‟«»「」『』″", '"'),
    **dict.fromkeys("‘’‚‛‹›′`", "'"),
    **dict.fromkeys("‐‑‒–—―−", "-"),
    "…": "...",
    "。": ".",
    "、": ",",
}


class Tokenizer:
    """A SentencePiece model with the vljax tokens contract. Picklable (for grain workers)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(
                f"tokenizer model {self.path!r} does not exist; train one with "
                "`vljax tokenizer train ... --out FILE.model` or leave config.tokenizer.model "
                "unset so the run trains one on its captions"
            )
        with open(self.path, "rb") as f:
            self._proto = f.read()
        self._load()

    def _load(self) -> None:
        self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        ids = (self._sp.pad_id(), self._sp.eos_id(), self._sp.unk_id(), self._sp.bos_id())
        if ids != (PAD_ID, EOS_ID, UNK_ID, BOS_ID):
            raise ConfigError(
                f"tokenizer {self.path!r} has (pad, eos, unk, bos) ids {ids}; vljax needs "
                f"({PAD_ID}, {EOS_ID}, {UNK_ID}, -1). Retrain it with `vljax tokenizer train` "
                "(or sentencepiece with --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1)"
            )

    def __getstate__(self):
        return {"path": self.path, "_proto": self._proto}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._load()

    def __repr__(self) -> str:
        return f"Tokenizer({self.path!r}, vocab_size={self.vocab_size})"

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, texts: str | Sequence[str], max_len: int) -> np.ndarray:
        """texts -> int32 [N, max_len]: pieces, EOS, zero padding (truncated to keep EOS)."""
        if isinstance(texts, str):
            texts = [texts]
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        out = np.zeros((len(texts), max_len), np.int32)
        for row, text in enumerate(texts):
            # One string at a time: the list form spins up a thread pool per call (~40x slower).
            ids = self._sp.encode(text)[: max_len - 1]
            out[row, : len(ids)] = ids
            out[row, len(ids)] = EOS_ID
        return out

    def decode(self, tokens) -> str | list[str]:
        """int ids [L] -> str, or [N, L] -> list[str]; stops at the first EOS, drops padding."""
        arr = np.asarray(tokens)
        if arr.ndim == 1:
            ids = []
            for t in arr.tolist():
                if t == EOS_ID:
                    break
                if t != PAD_ID:
                    ids.append(int(t))
            return self._sp.decode(ids)
        return [self.decode(row) for row in arr]

    def pieces(self, text: str) -> list[str]:
        return self._sp.encode(text, out_type=str)


def _punct_rules_tsv(lowercase: bool) -> str:
    """Per-character NFKC (+ case folding) and PUNCT_MAP as a SentencePiece rule table."""
    rows = []
    for cp in range(0x20, 0x30000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        t = unicodedata.normalize("NFKC", c)
        if lowercase:
            t = t.casefold()
        t = "".join(PUNCT_MAP.get(ch, ch) for ch in t)
        if t != c and t:
            src = f"{cp:X}"
            dst = " ".join(f"{ord(ch):X}" for ch in t)
            rows.append(f"{src}\t{dst}")
    return "\n".join(rows) + "\n"


def _train(sentences: list[str], kwargs: dict) -> bytes:
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=buf, **kwargs)
    return buf.getvalue()


def train_tokenizer(
    texts: Iterable[str],
    out_path: str | os.PathLike,
    vocab_size: int,
    lowercase: bool = False,
    normalize_punct: bool = False,
    byte_fallback: bool = False,
    max_sentences: int = 2_000_000,
) -> Tokenizer:
    """Train a unigram SentencePiece model on texts and write it to out_path (atomically).

    When the corpus is too small for `vocab_size` unigram pieces, it trains BPE instead with
    `vocab_size` as an upper bound (`hard_vocab_limit=False`), which yields whole-word pieces
    for closed vocabularies such as the shapes captions. Character coverage is 0.9995, enough for
    Chinese. Returns the loaded Tokenizer.
    """
    out_path = os.fspath(out_path)
    min_vocab = 3 + (256 if byte_fallback else 0) + 1
    if vocab_size < min_vocab:
        raise ConfigError(f"vocab_size must be >= {min_vocab}, got {vocab_size}")
    sentences = []
    for t in texts:
        if t and t.strip():
            sentences.append(t.replace("\n", " "))
            if len(sentences) >= max_sentences:
                break
    if not sentences:
        raise ConfigError("no non-empty texts to train the tokenizer on")
    kwargs = dict(
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=True,
        character_coverage=0.9995,
        pad_id=PAD_ID,
        eos_id=EOS_ID,
        unk_id=UNK_ID,
        bos_id=-1,
        byte_fallback=byte_fallback,
        train_extremely_large_corpus=False,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )
    with tempfile.TemporaryDirectory() as tmpdir:
        if normalize_punct:
            tsv = os.path.join(tmpdir, "rules.tsv")
            with open(tsv, "w", encoding="utf-8") as f:
                f.write(_punct_rules_tsv(lowercase))
            kwargs["normalization_rule_tsv"] = tsv
        else:
            kwargs["normalization_rule_name"] = "nmt_nfkc_cf" if lowercase else "nmt_nfkc"
        try:
            proto = _train(sentences, kwargs)
        except RuntimeError as e:
            if "Vocabulary size too high" not in str(e):
                raise RuntimeError(f"SentencePiece training on {len(sentences)} texts: {e}") from e
            # A closed vocabulary (e.g. the shapes captions): the unigram trainer cannot reach
            # vocab_size and degrades to characters. BPE stops at whole words instead.
            print(
                f"tokenizer: the captions allow fewer than {vocab_size} unigram pieces; "
                "training BPE with vocab_size as an upper bound instead",
                file=sys.stderr,
            )
            kwargs.update(model_type="bpe", hard_vocab_limit=False)
            proto = _train(sentences, kwargs)
    parent = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tokenizer-", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(proto)
    os.replace(tmp, out_path)
    return Tokenizer(out_path)


def tokenizer_for_run(config, workdir: str | os.PathLike) -> Tokenizer:
    """The run's tokenizer, stored as WORKDIR/tokenizer.model so the run is self-contained.

    Reuses WORKDIR/tokenizer.model when present (a resumed run). Otherwise copies
    `config.tokenizer.model` when set, or trains one on up to
    `config.tokenizer.train_captions` of the run's training captions
    (`pipeline.train_captions`) with `config.tokenizer.{vocab_size, lowercase}`.
    """
    path = os.path.join(os.fspath(workdir), "tokenizer.model")
    if os.path.exists(path):
        return Tokenizer(path)
    given = config.tokenizer.get("model")
    if given:
        tok = Tokenizer(given)  # validates the ids before copying
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tokenizer-")
        with os.fdopen(fd, "wb") as f:
            f.write(tok._proto)
        os.replace(tmp, path)
        return Tokenizer(path)

    return train_tokenizer(
        train_captions(config, int(config.tokenizer.train_captions)),
        path,
        vocab_size=config.tokenizer.vocab_size,
        lowercase=bool(config.tokenizer.get("lowercase", False)),
        normalize_punct=bool(config.tokenizer.get("normalize_punct", False)),
    )


def cli(argv: Sequence[str] | None = None) -> int:
    """`vljax tokenizer train --dataset (shapes | tfds:NAME[:SPLIT]) --vocab-size N --out F`."""
    p = argparse.ArgumentParser(prog="vljax tokenizer", description=cli.__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a SentencePiece model on a dataset's captions")
    t.add_argument("--dataset", required=True, help="shapes | tfds:NAME[:SPLIT]")
    t.add_argument("--data-dir", default=None, help="tfds data dir (for tfds: datasets)")
    t.add_argument("--vocab-size", type=int, required=True)
    t.add_argument("--out", required=True, help="output FILE.model")
    t.add_argument("--lowercase", action="store_true")
    t.add_argument("--normalize-punct", action="store_true")
    t.add_argument("--byte-fallback", action="store_true")
    t.add_argument(
        "--lang", default="any", help="caption language: en, zh, ... or any (all; default)"
    )
    t.add_argument("--limit", type=int, default=2_000_000, help="at most this many captions")
    args = p.parse_args(argv)

    try:
        texts = dataset_captions(args.dataset, args.data_dir, args.lang, args.limit)
        tok = train_tokenizer(
            texts,
            args.out,
            args.vocab_size,
            lowercase=args.lowercase,
            normalize_punct=args.normalize_punct,
            byte_fallback=args.byte_fallback,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"vljax tokenizer: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} (vocab_size={tok.vocab_size})")
    return 0
