"""Transformer text tower (CLIP: causal + EOS pooling; SigLIP: bidirectional + last)."""

import flax.linen as nn
import jax.numpy as jnp

from vljax.choices import TEXT_POOLS, TEXT_PROJS, expected
from vljax.models.layers import Dtype, Encoder, constrain, layer_norm, partitioned
from vljax.token_ids import EOS_ID, PAD_ID


class TextTransformer(nn.Module):
    """Tokens `int32 [N, L]` (0 = padding) -> pooled `[N, width]` -> (projection)."""

    vocab_size: int
    max_len: int
    width: int
    depth: int
    heads: int
    mlp_dim: int
    causal: bool = True
    pool: str = "eos"  # eos | last | first | mean
    proj: str = "linear"  # linear (no bias) | linear_bias
    proj_dim: int | None = None
    eos_id: int = EOS_ID
    # None = no padding mask (checkpoints trained without one, e.g. big_vision SigLIP, or
    # imported CLIP whose pad id is a real token; causal EOS pooling never sees pads).
    pad_id: int | None = PAD_ID
    activation: str = "gelu"
    ln_eps: float = 1e-5
    dtype: Dtype = jnp.float32
    attention: str = "xla"  # model.attention
    remat: bool = False
    remat_policy: str = "full"  # model.remat_policy
    scan: bool = False

    @nn.compact
    def __call__(self, tokens, return_tokens: bool = False, token_gates=None):
        """-> the pooled, projected embedding [N, proj_dim]; with `return_tokens`, also every
        position after the final norm and the same projection ([N, L, proj_dim]; padding
        positions hold ignored values, `tokens != pad_id` marks the real ones).

        `token_gates` (float [N, L], default all 1) scale each token's embedding before the
        position embedding is added: the gradient of a score at gates 1 is each token's
        gradient x input relevance (TPM-CL's adaptive masking, vljax/losses/token_masking.py).
        """
        if tokens.ndim != 2 or tokens.shape[1] > self.max_len:
            raise ValueError(f"tokens must be [N, L<={self.max_len}], got shape {tokens.shape}")
        n, length = tokens.shape
        x = nn.Embed(
            self.vocab_size,
            self.width,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            embedding_init=partitioned(nn.initializers.normal(0.02), ("vocab", "embed")),
            name="embedding",
        )(tokens)
        if token_gates is not None:
            x = x * token_gates[..., None].astype(x.dtype)
        pe = self.param(
            "pos_embedding",
            partitioned(nn.initializers.normal(0.01), (None, "length", "embed")),
            (1, self.max_len, self.width),
            jnp.float32,
        )
        x = x + pe[:, :length].astype(x.dtype)
        x = constrain(x, ("batch", "length", "act_embed"))

        # Keys that are padding are never attended to; queries at padding positions still
        # produce (ignored) outputs. Causal adds the lower-triangular constraint.
        if self.pad_id is None:
            valid = jnp.ones(tokens.shape, bool)
        else:
            valid = tokens != self.pad_id
        mask = valid[:, None, None, :]
        if self.causal:
            mask = mask & jnp.tril(jnp.ones((length, length), bool))[None, None]
        x = Encoder(
            depth=self.depth,
            heads=self.heads,
            mlp_dim=self.mlp_dim,
            activation=self.activation,
            ln_eps=self.ln_eps,
            dtype=self.dtype,
            attention=self.attention,
            remat=self.remat,
            remat_policy=self.remat_policy,
            scan=self.scan,
            name="encoder",
        )(x, mask)
        x = layer_norm(self.ln_eps, self.dtype, "encoder_norm")(x)
        sequence = x

        if self.pool == "eos":
            # First EOS, like HF CLIP with eos_token_id != 2 (position 0 if there is none).
            idx = jnp.argmax(tokens == self.eos_id, axis=1)
            x = x[jnp.arange(n), idx]
        elif self.pool == "last":
            x = x[:, -1]
        elif self.pool == "first":
            x = x[:, 0]
        elif self.pool == "mean":
            w = valid.astype(jnp.float32)[..., None]
            total = jnp.sum(x.astype(jnp.float32) * w, axis=1)
            x = (total / jnp.maximum(jnp.sum(w, axis=1), 1.0)).astype(x.dtype)
        else:
            raise ValueError(f"text.pool={self.pool!r}: expected {expected(TEXT_POOLS)}")

        if self.proj not in TEXT_PROJS:
            raise ValueError(f"text.proj={self.proj!r}: expected {expected(TEXT_PROJS)}")
        head = nn.Dense(
            self.proj_dim,
            use_bias=self.proj == "linear_bias",
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=partitioned(nn.initializers.lecun_normal(), ("embed", "mlp")),
            bias_init=partitioned(nn.initializers.zeros, ("mlp",)),
            name="head",
        )
        return (head(x), head(sequence)) if return_tokens else head(x)
