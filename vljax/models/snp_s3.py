"""SNP-S3 (arXiv 2401.17773): video_clip's towers plus one shared BERT-type network.

The towers are `VideoTwoTower`'s (the ViT embeds each frame, `model.video.temporal` pools the
projected frame embeddings into `img/emb`; the CLIP text tower). The shared network
(`model.snp`: `depth` bidirectional pre-LN Encoder blocks of `heads` heads and MLP `mlp_dim`
at width `embed_dim`, then a LayerNorm) runs in two modes, with the same params:

- text only: the text tower's projected token features + the text type embedding; its
  output at the caption's first EOS (the causal tower's summary position, now attending both
  ways) -> linear -> L2 norm is `txt/emb`, the contrastive text embedding (`encode_texts`);
- cross-modal: [CLS, caption tokens (text type), frames (video type + frame position)]; its
  CLS output -> the matching head (one logit: matched or not) and its caption outputs -> the
  MLM head (BERT's: dense, activation, LayerNorm, vocabulary logits).

Training (`__call__`) builds the S3 inputs from the batch (vljax/models/significant_words.py):
each caption's `model.snp.mask_words` most significant pieces (in-batch tf-idf) are replaced
by UNK_ID for masked language modelling, and the caption with its most significant swappable
piece swapped for one of the same kind is the matching's hard negative. The S3 tasks run on
every `model.snp.s3_every`-th example (N = ceil(B / s3_every) rows; 1: all B), while the
significance and the swaps read the whole batch's captions and the contrastive term takes
every example: one text-tower pass on [masked (N); true (B); negative (N)] captions and one
cross-modal pass on the N examples' [masked; true; negative] captions (3N), each beside its
clip's frames. Outputs beside video_clip's: `mlm/logits` [N, L, vocab] (float32),
`mlm/masked` [N, L], `mlm/targets` [N, L] (the true tokens), `match/logits` [N, 2] (true
caption, hard negative), `match/valid` [N, 2] (a caption with nothing to swap has no
negative).
"""

import flax.linen as nn
import jax.numpy as jnp

from vljax.choices import expected
from vljax.errors import ConfigError
from vljax.models.layers import (
    Encoder,
    activation_fn,
    compute_dtype,
    encoder_options,
    l2_normalize,
    layer_norm,
    partitioned,
)
from vljax.models.significant_words import (
    significant_words,
    swap_significant_words,
    tfidf_scores,
)
from vljax.models.video_clip import VideoTwoTower, frame_validity
from vljax.token_ids import EOS_ID, PAD_ID, UNK_ID

TEXT_TYPE, VIDEO_TYPE = 0, 1
# The model.video.temporal values that pool a clip's projected frame embeddings into one
# (VideoTwoTower.pool_frames, which encode_videos and the contrastive term both use);
# xpool pools per text, so a clip has no one embedding for the contrastive term.
POOLED_TEMPORALS = ("mean", "transformer", "space_time", "early")


def _dense(features, axes, dtype, bias=True):
    return nn.Dense(
        features,
        use_bias=bias,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=partitioned(nn.initializers.lecun_normal(), axes),
        bias_init=partitioned(nn.initializers.zeros, axes[-1:]),
    )


class SNPS3(VideoTwoTower):
    """`config` is `config.model`: video_clip's keys plus `snp` (depth, heads, mlp_dim,
    mask_words, s3_every)."""

    def setup(self):
        super().setup()
        c = self.config
        s = c.get("snp")
        if s is None:
            raise ConfigError("model.snp (depth, heads, mlp_dim, mask_words) is required by snp_s3")
        temporal = c["video"]["temporal"]
        if temporal not in POOLED_TEMPORALS:
            raise ConfigError(
                f"model.video.temporal={temporal!r}: snp_s3 pools the frames of its one ViT pass "
                f"itself (`pool_frames`) and takes {expected(POOLED_TEMPORALS)}; set one of them"
            )
        d = c["embed_dim"]
        if d % s["heads"]:
            raise ConfigError(
                f"model.snp.heads={s['heads']} does not divide model.embed_dim={d} (the shared "
                "network runs on the projected features); set heads to a divisor of it"
            )
        if s["mask_words"] < 1:
            raise ConfigError(f"model.snp.mask_words={s['mask_words']}: expected >= 1")
        # A run saved before the key existed ran the S3 tasks on every example.
        self.s3_every = int(s.get("s3_every", 1))
        if self.s3_every < 1:
            raise ConfigError(
                f"model.snp.s3_every={self.s3_every}: expected >= 1 (1: every example)"
            )
        dtype = compute_dtype(c["dtype"])
        self.snp_dtype = dtype
        self.pad_id = c["text"].get("pad_id", PAD_ID)
        self.eos_id = c["text"].get("eos_id", EOS_ID)
        self.shared = Encoder(
            depth=s["depth"],
            heads=s["heads"],
            mlp_dim=s["mlp_dim"],
            **encoder_options(c),
        )
        self.shared_norm = layer_norm(c["ln_eps"], dtype, "shared_norm")
        init = nn.initializers.normal(0.02)
        self.type_embedding = self.param(
            "type_embedding", partitioned(init, (None, "embed")), (2, d), jnp.float32
        )
        self.frame_embedding = self.param(
            "frame_embedding",
            partitioned(init, (None, "embed")),
            (c["video"]["frames"], d),
            jnp.float32,
        )
        self.cls = self.param("cls", partitioned(init, (None, "embed")), (1, d), jnp.float32)
        self.text_head = _dense(d, ("embed", "mlp"), dtype, bias=False)
        self.mlm_dense = _dense(d, ("embed", "mlp"), dtype)
        self.mlm_norm = layer_norm(c["ln_eps"], dtype, "mlm_norm")
        self.mlm_out = _dense(c["text"]["vocab_size"], ("embed", "vocab"), dtype)
        self.match_head = _dense(1, ("embed", None), dtype)

    # The shared network's two modes.

    def _refine(self, x, valid):
        """The shared network over x [N, S, D] whose keys `valid` [N, S] are attended."""
        return self.shared_norm(self.shared(x.astype(self.snp_dtype), valid[:, None, None, :]))

    def _real(self, tokens):
        """bool [N, L]: the caption's real tokens (all, for a tower without a pad id)."""
        if self.pad_id is None:
            return jnp.ones(tokens.shape, bool)
        return tokens != self.pad_id

    def _text_mode(self, tokens, features):
        """Text only: caption features [N, L, D] -> `txt/emb` [N, D]."""
        x = features + self.type_embedding[TEXT_TYPE].astype(features.dtype)
        y = self._refine(x, self._real(tokens))
        eos = jnp.argmax(tokens == self.eos_id, axis=1)
        return l2_normalize(self.text_head(y[jnp.arange(tokens.shape[0]), eos]))

    def _cross_modal(self, tokens, features, frames, frame_valid=None):
        """[CLS, caption (text type), frames (video type + position)] -> (CLS output [N, D],
        caption outputs [N, L, D]); `frame_valid` (bool [N, T], None = all): the real frames,
        the only ones attended to."""
        n, length = tokens.shape
        t = frames.shape[1]
        dtype = features.dtype
        cls = jnp.broadcast_to(self.cls[None].astype(dtype), (n, 1, features.shape[-1]))
        text = features + self.type_embedding[TEXT_TYPE].astype(dtype)
        video = frames.astype(dtype) + self.type_embedding[VIDEO_TYPE].astype(dtype)
        video = video + self.frame_embedding[None, :t].astype(dtype)
        x = jnp.concatenate([cls, text, video], axis=1)
        on = jnp.ones((n, 1), bool)
        real_frames = jnp.ones((n, t), bool) if frame_valid is None else frame_valid
        valid = jnp.concatenate([on, self._real(tokens), real_frames], axis=1)
        y = self._refine(x, valid)
        return y[:, 0], y[:, 1 : 1 + length]

    def _mlm_logits(self, y):
        act = activation_fn(self.config["activation"])
        return self.mlm_out(self.mlm_norm(act(self.mlm_dense(y)))).astype(jnp.float32)

    # Embeddings.

    def encode_texts(self, tokens, token_gates=None):
        """int32 tokens [N, L] -> `txt/emb` [N, D]: the tower, then the shared network's text
        mode."""
        _, features = self.txt(tokens, return_tokens=True, token_gates=token_gates)
        return self._text_mode(tokens, features)

    def __call__(self, batch, train: bool = False):
        tokens, video = batch["tokens"], batch["video"]
        b = tokens.shape[0]
        s = self.config["snp"]
        counts = batch.get("video_frames")
        frames = self.encode_frames(video, train=train, counts=counts)
        frame_valid = frame_validity(counts, frames.shape[1])
        scores = tfidf_scores(tokens, self.config["text"]["vocab_size"])
        masked = significant_words(tokens, scores, int(s["mask_words"]))
        negatives, _, has_negative = swap_significant_words(tokens, masked, scores)
        # The S3 tasks' rows: every `s3_every`-th example (significance and swaps still read
        # the whole batch); the contrastive term keeps every example.
        s3 = slice(None, None, self.s3_every)
        s3_tokens, s3_masked, s3_frames = tokens[s3], masked[s3], frames[s3]
        n = s3_tokens.shape[0]
        captions = jnp.concatenate(
            [jnp.where(s3_masked, UNK_ID, s3_tokens).astype(tokens.dtype), tokens, negatives[s3]]
        )
        _, features = self.txt(captions, return_tokens=True)
        true_features = features[n : n + b]
        s3_features = jnp.concatenate([features[:n], true_features[s3], features[n + b :]])
        s3_captions = jnp.concatenate([captions[:n], s3_tokens, captions[n + b :]])
        s3_valid = None if frame_valid is None else jnp.concatenate([frame_valid[s3]] * 3)
        cls, text = self._cross_modal(
            s3_captions, s3_features, jnp.concatenate([s3_frames] * 3), s3_valid
        )
        match = self.match_head(cls[n:])[:, 0].astype(jnp.float32).reshape(2, n).T
        return {
            "img/emb": self.pool_frames(frames, counts),
            **self.order_outputs(frames, counts),
            "txt/emb": self._text_mode(tokens, true_features),
            "mlm/logits": self._mlm_logits(text[:n]),
            "mlm/masked": s3_masked,
            "mlm/targets": s3_tokens,
            "match/logits": match,
            "match/valid": jnp.stack([jnp.ones((n,), bool), has_negative[s3]], axis=1),
            "scale": jnp.exp(self.log_scale),
            "bias": self.bias,
        }
