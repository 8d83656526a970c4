"""snp_s3 (vljax/methods/snp_s3.py): significant-word masking and the swapped hard negatives
on a hand-made batch; what the mlm and matching terms average over; one ViT pass gives the
embeddings that retrieval computes; the :tiny recipe trains with each term logged."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.methods.runs import SMOKE_STEPS, assert_trained_smoke_steps, smoke_train
from tests.random_params import random_variables
from vljax.config import build_config
from vljax.errors import ConfigError
from vljax.losses.terms import TERMS
from vljax.losses.token_masking import maskable_tokens
from vljax.methods import snp_s3
from vljax.models.significant_words import (
    significant_words,
    swap_significant_words,
    tfidf_scores,
)
from vljax.token_ids import EOS_ID, PAD_ID

# "a" and "moves" are in every caption; "red", "left" and "square" in one; the rest in three.
CAPTIONS = [
    "a red circle moves left",
    "a blue circle moves up",
    "a blue circle moves up",
    "a blue square moves up",
]
WORDS = sorted({w for c in CAPTIONS for w in c.split()})
IDS = {w: 3 + i for i, w in enumerate(WORDS)}  # after PAD, EOS, UNK
LENGTH = 8
VOCAB = 3 + len(WORDS)


def encode(captions):
    rows = [[IDS[w] for w in c.split()] + [EOS_ID] for c in captions]
    return jnp.array([r + [PAD_ID] * (LENGTH - len(r)) for r in rows], jnp.int32)


def words(row, where):
    return [WORDS[int(t) - 3] for t, w in zip(row, where, strict=True) if w]


@functools.partial(jax.jit, static_argnames="k")
def s3(tokens, k):
    """(significant [N, L], negatives, swapped, has) for a batch, in one compiled program."""
    scores = tfidf_scores(tokens, VOCAB)
    significant = significant_words(tokens, scores, k)
    return (significant, *swap_significant_words(tokens, significant, scores))


def text(row):
    return " ".join(words(row, np.asarray(row) >= 3))


def test_significant_word_masking_picks_the_rare_words_never_padding_eos_or_common_ones():
    tokens = encode(CAPTIONS)
    masked = np.asarray(s3(tokens, k=2)[0])
    assert words(tokens[0], masked[0]) == ["red", "left"]
    assert words(tokens[3], masked[3]) == ["blue", "square"]  # blue ties up: earlier first
    # However many are asked for: only pieces that some caption lacks, never PAD nor EOS.
    every = np.asarray(s3(tokens, k=LENGTH)[0])
    assert words(tokens[0], every[0]) == ["red", "circle", "left"]
    assert not np.any(every & ~np.asarray(maskable_tokens(tokens)))
    assert not np.any(every[np.isin(tokens, [IDS["a"], IDS["moves"]])])


def test_the_hard_negative_swaps_one_significant_word_for_one_of_its_kind():
    tokens = encode(CAPTIONS)
    significant, negatives, swapped, has = map(np.asarray, s3(tokens, k=2))
    assert has.all()
    # red (tied with left: earlier first) takes caption 1's word in its slot "a _ circle".
    assert text(negatives[0]) == "a blue circle moves left"
    # square, in the slot "blue _ moves", takes circle (caption 1's, the next one that fits).
    assert text(negatives[3]) == "a blue circle moves up"
    differs = negatives != np.asarray(tokens)
    np.testing.assert_array_equal(differs, swapped)
    assert (differs.sum(axis=1) == 1).all()
    assert not np.any(differs & ~np.asarray(significant))


def test_a_caption_with_no_word_of_the_same_kind_in_its_slot_has_no_negative():
    tokens = encode(["a red circle moves left", "a blue square moves up"])
    _, negatives, swapped, has = map(np.asarray, s3(tokens, k=2))
    # red/blue and circle/square sit between different neighbours; left/up are not among
    # the two most significant (ties: the earlier first).
    assert not has.any() and not swapped.any()
    np.testing.assert_array_equal(negatives, tokens)


@functools.cache
def tiny_model():
    config = build_config("configs/snp_s3.py:tiny", []).model
    model = snp_s3.build_model(config)
    batch = snp_s3.METHOD.example_batch(config, 2)
    params = random_variables(model, batch)["params"]
    return config, model, params


def test_training_outputs_embed_as_retrieval_does():
    """One ViT pass gives `img/emb` and the cross-modal frame tokens: it must equal what the
    retrieval eval embeds (encode_videos); `txt/emb` must equal encode_texts."""
    config, model, params = tiny_model()
    size, t = config.image.image_size, config.video.frames
    video = jax.random.uniform(jax.random.key(1), (4, t, size, size, 3), minval=-1, maxval=1)
    tokens = jnp.zeros((4, config.text.max_len), jnp.int32).at[:, :LENGTH].set(encode(CAPTIONS))

    @jax.jit
    def run(video, tokens):
        v = {"params": params}
        out = model.apply(v, {"video": video, "tokens": tokens})
        return (
            out,
            model.apply(v, video, method="encode_videos"),
            model.apply(v, tokens, method="encode_texts"),
        )

    out, videos, texts = run(video, tokens)
    np.testing.assert_allclose(out["img/emb"], videos, atol=1e-6)
    np.testing.assert_allclose(out["txt/emb"], texts, atol=1e-6)
    assert out["mlm/logits"].shape == (4, config.text.max_len, config.text.vocab_size)
    assert out["match/logits"].shape == (4, 2) and bool(out["match/valid"].all())


def test_s3_tasks_on_every_kth_example_are_those_rows_of_the_whole_batchs():
    """`model.snp.s3_every = 2`: the S3 outputs are rows 0, 2, 4 of the whole batch's (the
    masks and swaps still read all 5 captions), and the embeddings are unchanged, with the
    same params (the option changes which rows run, not the model)."""
    config, model, params = tiny_model()
    every_2 = snp_s3.build_model(
        build_config("configs/snp_s3.py:tiny", [("model.snp.s3_every", 2)]).model
    )
    size, t = config.image.image_size, config.video.frames
    video = jax.random.uniform(jax.random.key(1), (5, t, size, size, 3), minval=-1, maxval=1)
    captions = [*CAPTIONS, "a blue square moves left"]
    tokens = jnp.zeros((5, config.text.max_len), jnp.int32).at[:, :LENGTH].set(encode(captions))

    @jax.jit
    def both(video, tokens):
        batch = {"video": video, "tokens": tokens}
        return model.apply({"params": params}, batch), every_2.apply({"params": params}, batch)

    whole, rows = both(video, tokens)
    for key in ("mlm/logits", "mlm/masked", "mlm/targets", "match/logits", "match/valid"):
        assert rows[key].shape[0] == 3, key
        np.testing.assert_allclose(rows[key], whole[key][::2], atol=1e-5, err_msg=key)
    assert bool(whole["match/valid"][:, 1].any())  # some hard negatives to compare
    for key in ("img/emb", "txt/emb"):
        np.testing.assert_allclose(rows[key], whole[key], atol=1e-6, err_msg=key)


def test_xpool_pooling_is_refused_by_name():
    """X-Pool pools each clip per text: no one clip embedding for the contrastive term."""
    config = build_config("configs/snp_s3.py:tiny", [("model.video.temporal", "xpool")]).model
    batch = snp_s3.METHOD.example_batch(config, 1)
    with pytest.raises(ConfigError, match="model.video.temporal='xpool'"):
        snp_s3.build_model(config).init(jax.random.key(0), batch)


def test_tiny_recipe_trains_with_each_term_logged(tmp_path):
    assert smoke_train("snp_s3", tmp_path) == 0
    assert_trained_smoke_steps(tmp_path)
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    rows = [r for r in rows if "loss" in r]
    last = rows[-1]
    assert last["step"] == SMOKE_STEPS
    terms = ("loss/contrastive", "loss/mlm", "loss/matching")
    for key in terms:
        assert all(np.isfinite(r[key]) for r in rows), key
    assert abs(last["loss"] - sum(last[k] for k in terms)) < 1e-4 * abs(last["loss"])
    assert 0 < last["matching/hard_negatives"] <= 1
    results = json.loads((tmp_path / "eval.json").read_text())
    assert 0 <= results["retrieval/moving_shapes/txt2video_r1"] <= 1


def test_the_s3_terms_score_only_masked_pieces_and_scored_pairs():
    tokens = jnp.array([[3, 4, EOS_ID, PAD_ID]], jnp.int32)
    logits = jnp.zeros((1, 4, 6)).at[0, 0, 3].set(50.0)  # piece 0 right; piece 1 uniform
    masked = jnp.array([[True, True, False, False]])
    value, metrics = TERMS["mlm"](
        {"mlm/logits": logits, "mlm/masked": masked, "mlm/targets": tokens}, {}, None
    )
    np.testing.assert_allclose(value, np.log(6) / 2, rtol=1e-5)  # the mean over the 2 masked
    assert float(metrics["mlm/accuracy"]) == 0.5
    outputs = {
        "match/logits": jnp.array([[3.0, -2.0], [1.0, 100.0]]),  # the 2nd negative: no swap
        "match/valid": jnp.array([[True, True], [True, False]]),
    }
    value, metrics = TERMS["matching"](outputs, {}, None)
    want = np.mean(np.log1p(np.exp([-3.0, -2.0, -1.0])))  # softplus(-x) for 1, softplus(x) for 0
    np.testing.assert_allclose(value, want, rtol=1e-5)
    assert float(metrics["matching/accuracy"]) == 1.0
    assert float(metrics["matching/hard_negatives"]) == 0.5
