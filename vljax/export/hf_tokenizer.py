"""Tokenizers across the vljax / Hugging Face boundary.

Export: the run's SentencePiece model becomes a `tokenizer.json` (the `tokenizers` library)
that reproduces vljax's ids exactly: SentencePiece normalisation (its precompiled charsmap,
whitespace cleanup, dummy prefix), the unigram model, EOS appended by the post-processor,
truncation to `max_len - 1` pieces + EOS, right padding with 0. The SentencePiece file is
copied alongside (`spiece.model`) so the folder can be imported back.

Import: `HFTokenizer(folder)` puts transformers' own tokenizer of any HF folder (e.g. CLIP's
BPE, SigLIP's SentencePiece) behind vljax's `.encode(texts, max_len)` interface.
"""

import json
import os
import shutil

import numpy as np

from vljax.data.tokenizer import Tokenizer
from vljax.export.remote_code import refuse_remote_code
from vljax.token_ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID

SPIECE_NAME = "spiece.model"
# The files of a transformers tokenizer folder (any of them may be absent).
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
    "merges.txt", SPIECE_NAME, "added_tokens.json",
)  # fmt: skip
# Marker in tokenizer_config.json of folders vljax exported (SentencePiece ids, EOS, pad 0).
VLJAX_TOKENS = "sentencepiece pieces + eos 1, cut to max_len - 1 pieces + eos, right pad 0"


def _load_proto(sp_model_path):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    with open(sp_model_path, "rb") as f:
        proto.ParseFromString(f.read())
    return proto


def check_sentencepiece_ids(sp_model_path):
    """vljax's token contract: pad 0, eos 1, unk 2, no BOS (see docs/internals.md)."""
    t = _load_proto(sp_model_path).trainer_spec
    got = dict(pad_id=t.pad_id, eos_id=t.eos_id, unk_id=t.unk_id, bos_id=t.bos_id)
    want = dict(pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=BOS_ID)
    if got != want:
        raise ValueError(
            f"SentencePiece model {sp_model_path} has {got}; vljax needs {want}. "
            "Retrain the tokenizer with `vljax tokenizer` (it sets these ids)."
        )


def sentencepiece_to_tokenizers(sp_model_path, max_len):
    """A `tokenizers.Tokenizer` equal to SentencePiece + vljax's EOS/truncation/padding.

    Normalisation (lowercasing, punctuation rules) lives in the .model's precompiled charsmap,
    so it carries over with it.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE, Unigram

    check_sentencepiece_ids(sp_model_path)
    proto = _load_proto(sp_model_path)
    model_type = proto.trainer_spec.model_type  # 1 = UNIGRAM, 2 = BPE
    if model_type not in (1, 2):
        raise ValueError(
            f"{sp_model_path}: SentencePiece model_type={model_type} cannot be exported; "
            "train the tokenizer with model_type=unigram or bpe (`vljax tokenizer train`)"
        )
    ns = proto.normalizer_spec
    if not ns.escape_whitespaces or proto.trainer_spec.treat_whitespace_as_suffix:
        raise ValueError(f"{sp_model_path}: unsupported SentencePiece whitespace options")

    # SentencePiece never matches control/unknown pieces (<pad>, </s>, <unk>) against text,
    # but the `tokenizers` unigram trie would (a literal "</s>" in a caption). Their names get
    # a trailing space, which never reaches the model (Metaspace turns spaces into "▁"), so
    # they stay unreachable from text and keep their ids for the post-processor and padding.
    vocab = []
    for p in proto.pieces:
        # NORMAL, USER_DEFINED, BYTE keep their names; CONTROL, UNKNOWN, UNUSED are hidden.
        name = p.piece if p.type in (1, 4, 6) else p.piece + " "
        vocab.append((name, p.score))
    unk_id = proto.trainer_spec.unk_id
    byte_fallback = proto.trainer_spec.byte_fallback
    if model_type == 1:
        tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=byte_fallback))
    else:
        tok = Tokenizer(
            BPE(
                {name: i for i, (name, _) in enumerate(vocab)},
                _bpe_merges(proto),
                unk_token=vocab[unk_id][0],
                fuse_unk=True,  # SentencePiece BPE emits one unk per run of unknowns
                byte_fallback=byte_fallback,
            )
        )

    norms = []
    if ns.precompiled_charsmap:
        norms.append(normalizers.Precompiled(ns.precompiled_charsmap))
    if ns.remove_extra_whitespaces:
        # SentencePiece strips both ends and collapses runs of spaces.
        norms += [
            normalizers.Strip(left=True, right=True),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    if norms:
        tok.normalizer = normalizers.Sequence(norms)
    scheme = "always" if ns.add_dummy_prefix else "never"
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=scheme)

    eos, pad, unk = vocab[EOS_ID][0], vocab[PAD_ID][0], vocab[unk_id][0]
    tag = eos.strip()  # the template's own name for id 1 (template syntax splits on spaces)
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A:0 {tag}:0", pair=f"$A:0 $B:1 {tag}:1", special_tokens=[(tag, EOS_ID)]
    )
    # Defaults stored in tokenizer.json; transformers applies its own call arguments on top.
    tok.enable_truncation(max_length=max_len)
    tok.enable_padding(direction="right", pad_id=PAD_ID, pad_token=pad, length=max_len)
    return tok, dict(eos=eos, pad=pad, unk=unk)


def _bpe_merges(proto):
    """SentencePiece BPE merges in the order SentencePiece applies them.

    SentencePiece BPE repeatedly merges the adjacent pair whose concatenation is the
    highest-scoring piece; ranking every (left, right) split of each piece by that piece's
    score gives `tokenizers` BPE the same order (ties: lower piece id first).
    """
    normal = {p.piece: i for i, p in enumerate(proto.pieces) if p.type in (1, 6)}
    ranked = []
    for piece, i in normal.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in normal and right in normal:
                ranked.append((-proto.pieces[i].score, i, cut, left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def write_hf_tokenizer(sp_model_path, out_dir, max_len):
    """Writes tokenizer.json + tokenizer_config.json + special_tokens_map.json + spiece.model."""
    tok, special = sentencepiece_to_tokenizers(sp_model_path, max_len)
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    shutil.copyfile(sp_model_path, os.path.join(out_dir, SPIECE_NAME))
    config = dict(
        tokenizer_class="PreTrainedTokenizerFast",
        model_max_length=max_len,
        padding_side="right",
        truncation_side="right",
        eos_token=special["eos"],
        pad_token=special["pad"],
        unk_token=special["unk"],
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=False,
        # vljax never splits special-token strings out of text; SentencePiece treats "</s>"
        # inside a caption as characters, so HF must too.
        split_special_tokens=True,
        vljax_tokens=VLJAX_TOKENS,
    )
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump(
            dict(eos_token=special["eos"], pad_token=special["pad"], unk_token=special["unk"]),
            f,
            indent=2,
        )


def is_vljax_export(folder):
    """True for a folder whose tokenizer vljax wrote (its SentencePiece model + contract)."""
    cfg_file = os.path.join(folder, "tokenizer_config.json")
    if not os.path.exists(os.path.join(folder, SPIECE_NAME)) or not os.path.exists(cfg_file):
        return False
    with open(cfg_file) as f:
        return json.load(f).get("vljax_tokens") == VLJAX_TOKENS


class HFTokenizer:
    """vljax's tokenizer interface over a Hugging Face tokenizer folder (CLIP BPE, SigLIP...).

    Runs transformers' own `AutoTokenizer` the way HF models are fed at inference:
    `padding="max_length", truncation=True, max_length=max_len`, so ids (BOS/EOS, pad id,
    lowercasing, SigLIP's text canonicalisation) are exactly transformers'.
    """

    def __init__(self, path):
        path = os.fspath(path)
        self.path = os.path.dirname(path) if path.endswith(".json") else path
        self._load()

    def _load(self):
        if not os.path.isdir(self.path):
            raise FileNotFoundError(
                f"{self.path} is not a Hugging Face tokenizer folder; pass the folder that "
                "holds tokenizer.json / tokenizer_config.json"
            )
        from transformers import AutoTokenizer

        refuse_remote_code(self.path)
        self._tok = AutoTokenizer.from_pretrained(self.path, trust_remote_code=False)
        self.pad_id = self._tok.pad_token_id if self._tok.pad_token_id is not None else 0
        self.vocab_size = len(self._tok)

    def __getstate__(self):  # picklable for data-loader workers: rebuilt from the folder
        return {"path": self.path}

    def __setstate__(self, state):
        self.path = state["path"]
        self._load()

    def encode(self, texts, max_len):
        if isinstance(texts, str):
            texts = [texts]
        if not len(texts):
            return np.zeros((0, max_len), np.int32)
        enc = self._tok(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=max_len,
            return_attention_mask=False,
        )
        return np.asarray(enc["input_ids"], dtype=np.int32)


def load_tokenizer(path):
    """Dispatch for `config.tokenizer.model` / a run's tokenizer path.

    A SentencePiece `.model` file -> `vljax.data.tokenizer.Tokenizer`; a Hugging Face tokenizer
    folder (what `vljax import` writes to DIR/init/tokenizer) or a `tokenizer.json` ->
    `HFTokenizer`. Both have `.encode(texts, max_len)` and `.vocab_size`, and pickle.
    """
    path = os.fspath(path)
    if os.path.isdir(path) or path.endswith(".json"):
        if os.path.isdir(path) and is_vljax_export(path):
            return Tokenizer(os.path.join(path, SPIECE_NAME))
        return HFTokenizer(path)

    return Tokenizer(path)
