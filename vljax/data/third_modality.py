"""The third modality of a three-modality example (Symile), and missing modalities.

Tokens: an example's `third` (a string of lower-case letters, e.g. "purple") spelled letter
by letter, 'a'..'z' -> FIRST_LETTER_ID.., then EOS, right-padded with PAD (the ids of
vljax/token_ids.py, so the third tower pools at EOS like the text tower). The vocabulary is
its own, not the run's tokenizer: the third modality is a token sequence of another kind than
the caption, and needs no tokenizer training.

Missing modalities, as in the Symile paper: each of the three modalities (`MODALITIES`) of
a training example is missing with probability `config.data.train.missing_prob`,
independently, and a missing one is replaced by a blank placeholder that no complete example
has (a black image, an empty token sequence: EOS alone). Its tower embeds the placeholder
like any input, so the model learns what "missing" looks like and no objective sees the
modality's content.
"""

from __future__ import annotations

import grain.python as grain
import numpy as np

from vljax.errors import ConfigError, DataError
from vljax.token_ids import EOS_ID, PAD_ID, UNK_ID

LETTERS = "abcdefghijklmnopqrstuvwxyz"
FIRST_LETTER_ID = UNK_ID + 1
VOCAB_SIZE = FIRST_LETTER_ID + len(LETTERS)  # ids a third-modality tower must embed
# The three modalities (batch fields), in the order `blank_missing`'s `present` lists them.
MODALITIES = ("image", "tokens", "third_tokens")


def spell(texts, max_len: int, vocab_size: int) -> np.ndarray:
    """Strings of lower-case letters -> int32 [N, max_len] (letters, EOS, PAD...)."""
    if vocab_size < VOCAB_SIZE:
        raise ConfigError(
            f"the third modality's tokens take {VOCAB_SIZE} ids but model.third.vocab_size="
            f"{vocab_size}; set --config.model.third.vocab_size={VOCAB_SIZE}"
        )
    out = np.full((len(texts), max_len), PAD_ID, np.int32)
    for row, text in enumerate(texts):
        bad = sorted(set(text) - set(LETTERS))
        if bad or not text:
            raise DataError(
                f"a third modality must be a non-empty string of the letters a-z; got {text!r}"
            )
        if len(text) + 1 > max_len:
            raise ConfigError(
                f"the third modality {text!r} takes {len(text) + 1} tokens with EOS but "
                f"model.third.max_len={max_len}; set --config.model.third.max_len="
                f"{len(text) + 1} or more"
            )
        out[row, : len(text)] = [FIRST_LETTER_ID + LETTERS.index(ch) for ch in text]
        out[row, len(text)] = EOS_ID
    return out


def blank_missing(fields: dict, present) -> dict:
    """The modalities of one example marked absent in `present` ([3] bool, MODALITIES order)
    replaced by a placeholder: a black image, an empty token sequence (EOS alone)."""
    out = dict(fields)
    for name, there in zip(MODALITIES, present, strict=True):
        if there:
            continue
        if name == "image":
            out[name] = np.zeros_like(fields[name])
        else:
            empty = np.full_like(fields[name], PAD_ID)
            empty[0] = EOS_ID
            out[name] = empty
    return out


class ThirdModality(grain.RandomMapTransform):
    """Wraps the pipeline's per-example transform (image, tokens): adds `third_tokens` (the
    example's `third`, spelled) and blanks each modality with probability `missing_prob`."""

    def __init__(self, inner, max_len: int, vocab_size: int, missing_prob: float):
        if isinstance(missing_prob, bool) or not 0 <= missing_prob < 1:
            raise ConfigError(
                f"config.data.train.missing_prob={missing_prob!r}: expected a probability in "
                "[0, 1) that a modality of a training example is missing"
            )
        self.inner = inner
        self.max_len, self.vocab_size = int(max_len), int(vocab_size)
        self.missing_prob = float(missing_prob)

    def random_map(self, element, rng: np.random.Generator):
        out = self.inner.random_map(element, rng)
        if "third" not in element:
            raise DataError(
                "the method needs a third modality per example (batch field third_tokens), "
                "and this dataset has none: use data.train.dataset='shapes_symile'"
            )
        out["third_tokens"] = spell([element["third"]], self.max_len, self.vocab_size)[0]
        if self.missing_prob > 0:  # no draw otherwise: complete data keeps its random stream
            out = blank_missing(out, rng.random(len(MODALITIES)) >= self.missing_prob)
        return out
