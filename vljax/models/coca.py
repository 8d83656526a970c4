"""CoCa (Yu et al. 2022, arXiv 2205.01917): a contrastive two-tower model that also captions.

Image side: a ViT (no projection) whose patch tokens feed two attentional poolers, learned
queries cross-attending to the tokens: one query -> linear projection -> `img/emb`, and
`decoder.pool_queries` queries -> the memory the captioning decoder cross-attends to.

Text side: one causal "unimodal" decoder serves both objectives in a single pass over

    [START, t_0, ..., t_{L-1}, CLS]

START is a learned embedding in place of a BOS id (vljax has none), CLS a learned embedding
after the text. Position embeddings: START row 0, t_j row j + 1 (`text.max_len + 1` rows);
CLS has none, so it means the same whatever the padded length. Padding keys (token ==
PAD_ID) are never attended to; START and CLS always are. Causality makes the outputs at
positions 0..L-1 (inputs START..t_{L-2}) exactly what a pass over the shifted caption
[START, t_0, ..., t_{L-2}] alone gives (`caption_logits`), and CLS sees every non-pad token:
its output -> layer norm -> linear projection -> `txt/emb`. The multimodal decoder (causal
self-attention + cross-attention to the memory + MLP, pre-LN) runs on positions 0..L-1;
`caption/logits[:, p]` predicts token t_p (teacher forcing: the targets are the tokens).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vljax.errors import ConfigError
from vljax.models.layers import (
    Attention,
    Dtype,
    Encoder,
    MlpBlock,
    block_stack,
    compute_dtype,
    constrain,
    l2_normalize,
    layer_norm,
    partitioned,
)
from vljax.models.vit import image_tower
from vljax.token_ids import EOS_ID, PAD_ID


class AttentionPool(nn.Module):
    """`queries` learned queries cross-attend to the tokens `[N, T, D]` -> `[N, queries, D]`."""

    queries: int
    heads: int
    ln_eps: float = 1e-5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        n, _, d = x.shape
        q = self.param(
            "query",
            partitioned(nn.initializers.normal(0.02), (None, "embed")),
            (self.queries, d),
            jnp.float32,
        )
        q = layer_norm(self.ln_eps, self.dtype, "ln_q")(q.astype(self.dtype))
        q = jnp.broadcast_to(q[None], (n, self.queries, d))
        kv = layer_norm(self.ln_eps, self.dtype, "ln_kv")(x)
        x = Attention(self.heads, self.dtype, name="attn")(q, kv)
        return layer_norm(self.ln_eps, self.dtype, "ln_out")(x)


class DecoderBlock(nn.Module):
    """Pre-LN block: x + self_attn(ln(x), mask), x + cross_attn(ln(x), memory), x + mlp(ln(x))."""

    heads: int
    mlp_dim: int
    activation: str = "gelu"
    ln_eps: float = 1e-5
    dtype: Dtype = jnp.float32
    scanned: bool = False  # nn.scan wants (carry, output)

    @nn.compact
    def __call__(self, x, mask, memory):
        x = constrain(x, ("batch", "length", "act_embed"))
        y = layer_norm(self.ln_eps, self.dtype, "ln_1")(x)
        x = x + Attention(self.heads, self.dtype, name="attn")(y, y, mask)
        y = layer_norm(self.ln_eps, self.dtype, "ln_2")(x)
        x = x + Attention(self.heads, self.dtype, name="cross_attn")(y, memory)
        y = layer_norm(self.ln_eps, self.dtype, "ln_3")(x)
        x = x + MlpBlock(self.mlp_dim, self.activation, self.dtype, name="mlp")(y)
        x = constrain(x, ("batch", "length", "act_embed"))
        return (x, None) if self.scanned else x


class Decoder(nn.Module):
    """`depth` DecoderBlocks; `scan` / `remat` as in `layers.Encoder`. The blocks are named
    `encoderblock_{i}` (scanned: `encoderblock`) so `stack_layers` / `unstack_layers` convert
    this stack too."""

    depth: int
    heads: int
    mlp_dim: int
    activation: str = "gelu"
    ln_eps: float = 1e-5
    dtype: Dtype = jnp.float32
    remat: bool = False
    scan: bool = False

    @nn.compact
    def __call__(self, x, mask, memory):
        kw = dict(heads=self.heads, mlp_dim=self.mlp_dim, activation=self.activation,
                  ln_eps=self.ln_eps, dtype=self.dtype)  # fmt: skip
        return block_stack(DecoderBlock, self.depth, kw, self.remat, self.scan, x, mask, memory)


def _positive_int(value, key):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"model.decoder.{key}={value!r}: expected an int >= 1")
    return int(value)


class CoCa(nn.Module):
    """`config` is `config.model` (TwoTower's keys, image.proj ignored) plus `decoder`:
    `depth` (multimodal decoder layers) and `pool_queries` (queries of the captioning pooler).
    """

    config: dict

    def setup(self):
        c = self.config
        dtype = compute_dtype(c["dtype"])
        self.dtype = dtype
        common = dict(activation=c["activation"], ln_eps=c["ln_eps"], dtype=dtype)
        stack = dict(remat=c["remat"], scan=c["scan"])
        i, t, d = c["image"], c["text"], c.get("decoder")
        if d is None:
            raise ConfigError("model.decoder (depth, pool_queries) is required by CoCa")
        depth = _positive_int(d.get("depth"), "depth")
        pool_queries = _positive_int(d.get("pool_queries"), "pool_queries")
        self.max_len = t["max_len"]
        self.img = image_tower(c, proj="none")  # the poolers read its tokens
        self.contrastive_pool = AttentionPool(1, i["heads"], c["ln_eps"], dtype)
        self.caption_pool = AttentionPool(pool_queries, i["heads"], c["ln_eps"], dtype)
        self.img_proj = self._proj(c["embed_dim"])

        tw = t["width"]
        self.embedding = nn.Embed(
            t["vocab_size"],
            tw,
            dtype=dtype,
            param_dtype=jnp.float32,
            embedding_init=partitioned(nn.initializers.normal(0.02), ("vocab", "embed")),
        )
        self.pos_embedding = self.param(
            "pos_embedding",
            partitioned(nn.initializers.normal(0.01), (None, "length", "embed")),
            (1, self.max_len + 1, tw),
            jnp.float32,
        )
        token_init = partitioned(nn.initializers.normal(0.02), (None, None, "embed"))
        self.start = self.param("start", token_init, (1, 1, tw), jnp.float32)
        self.cls = self.param("cls", token_init, (1, 1, tw), jnp.float32)
        layers = dict(heads=t["heads"], mlp_dim=t["mlp_dim"], **common, **stack)
        self.unimodal = Encoder(depth=t["depth"], **layers)
        self.txt_norm = nn.LayerNorm(**self._ln(c["ln_eps"], dtype))
        self.txt_proj = self._proj(c["embed_dim"])
        self.multimodal = Decoder(depth=depth, **layers)
        self.decoder_norm = nn.LayerNorm(**self._ln(c["ln_eps"], dtype))
        self.lm_head = nn.Dense(
            t["vocab_size"],
            dtype=dtype,
            param_dtype=jnp.float32,
            kernel_init=partitioned(nn.initializers.lecun_normal(), ("embed", "vocab")),
            bias_init=partitioned(nn.initializers.zeros, ("vocab",)),
        )

        self.log_scale = self.param(
            "log_scale",
            partitioned(nn.initializers.constant(np.log(c["scale_init"])), ()),
            (),
            jnp.float32,
        )
        if c.get("bias_init") is not None:
            self.bias = self.param(
                "bias", partitioned(nn.initializers.constant(c["bias_init"]), ()), (), jnp.float32
            )
        else:
            self.bias = None

    def _proj(self, dim):
        return nn.Dense(
            dim,
            use_bias=False,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=partitioned(nn.initializers.lecun_normal(), ("embed", "mlp")),
        )

    @staticmethod
    def _ln(eps, dtype):
        return dict(
            epsilon=eps,
            dtype=dtype,
            param_dtype=jnp.float32,
            scale_init=partitioned(nn.initializers.ones, ("embed",)),
            bias_init=partitioned(nn.initializers.zeros, ("embed",)),
        )

    # Image side.

    def _image_tokens(self, images, train):
        _, tokens = self.img(images, train=train, return_tokens=True)
        return tokens

    def _image_embedding(self, tokens):
        return l2_normalize(self.img_proj(self.contrastive_pool(tokens)[:, 0]))

    def encode_images(self, images, train: bool = False):
        """float images [N, H, W, 3] -> `img/emb` [N, embed_dim], unit norm."""
        return self._image_embedding(self._image_tokens(images, train))

    def caption_memory(self, images, train: bool = False):
        """float images [N, H, W, 3] -> the captioning pooler's output [N, Q, image.width]."""
        return self.caption_pool(self._image_tokens(images, train))

    # Text side.

    def _unimodal(self, tokens, with_cls: bool):
        """The unimodal decoder over [START, tokens..., (CLS)] -> (outputs, attention mask)."""
        if tokens.ndim != 2 or tokens.shape[1] > self.max_len:
            raise ValueError(f"tokens must be [N, L<={self.max_len}], got shape {tokens.shape}")
        n, length = tokens.shape
        width = self.pos_embedding.shape[-1]
        start = jnp.broadcast_to(self.start.astype(self.dtype), (n, 1, width))
        x = jnp.concatenate([start, self.embedding(tokens)], axis=1)
        x = x + self.pos_embedding[:, : length + 1].astype(self.dtype)
        valid = jnp.concatenate([jnp.ones((n, 1), bool), tokens != PAD_ID], axis=1)
        if with_cls:
            cls = jnp.broadcast_to(self.cls.astype(self.dtype), (n, 1, width))
            x = jnp.concatenate([x, cls], axis=1)
            valid = jnp.concatenate([valid, jnp.ones((n, 1), bool)], axis=1)
        size = x.shape[1]
        mask = valid[:, None, None, :] & jnp.tril(jnp.ones((size, size), bool))[None, None]
        x = constrain(x, ("batch", "length", "act_embed"))
        return self.unimodal(x, mask), mask

    def _text_embedding(self, cls_out):
        return l2_normalize(self.txt_proj(self.txt_norm(cls_out)))

    def _caption_head(self, x, mask, memory):
        x = self.multimodal(x, mask, memory.astype(self.dtype))
        return self.lm_head(self.decoder_norm(x)).astype(jnp.float32)

    def encode_texts(self, tokens):
        """int32 tokens [N, L] -> `txt/emb` [N, embed_dim], unit norm."""
        x, _ = self._unimodal(tokens, with_cls=True)
        return self._text_embedding(x[:, -1])

    def caption_logits(self, memory, tokens):
        """Teacher forcing: memory [N, Q, W], tokens [N, L] -> float32 logits [N, L, vocab];
        `[:, p]` predicts tokens[:, p] from START, tokens[:, :p] (the decoder input is the
        caption shifted right by one, START first)."""
        x, mask = self._unimodal(tokens[:, :-1], with_cls=False)
        return self._caption_head(x, mask, memory)

    def __call__(self, batch, train: bool = False):
        tokens = batch["tokens"]
        length = tokens.shape[1]
        image_tokens = self._image_tokens(batch["image"], train)
        # One unimodal pass: positions 0..L-1 are caption_logits' shifted input (causal),
        # the last one is CLS.
        x, mask = self._unimodal(tokens, with_cls=True)
        memory = self.caption_pool(image_tokens)
        logits = self._caption_head(x[:, :length], mask[:, :, :length, :length], memory)
        return {
            "img/emb": self._image_embedding(image_tokens),
            "txt/emb": self._text_embedding(x[:, -1]),
            "caption/logits": logits,
            "scale": jnp.exp(self.log_scale),
            "bias": self.bias,
        }


def _decode_loop(model, variables, images, max_len):
    memory = model.apply(variables, images, method="caption_memory")
    n = images.shape[0]

    def step(state):
        p, buf, done = state
        logits = model.apply(variables, memory, buf, method="caption_logits")
        logits = jax.lax.dynamic_index_in_dim(logits, p, axis=1, keepdims=False)
        # PAD is never a training target (the loss ignores it): it is not a token to emit.
        logits = logits.at[:, PAD_ID].set(-jnp.inf)
        tok = jnp.where(done, PAD_ID, jnp.argmax(logits, axis=-1).astype(jnp.int32))
        buf = jax.lax.dynamic_update_index_in_dim(buf, tok, p, axis=1)
        return p + 1, buf, done | (tok == EOS_ID)

    def cond(state):
        p, _, done = state
        return (p < max_len) & ~jnp.all(done)

    init = (jnp.int32(0), jnp.full((n, max_len), PAD_ID, jnp.int32), jnp.zeros((n,), bool))
    _, buf, _ = jax.lax.while_loop(cond, step, init)
    return buf


_jitted_decode_loop = jax.jit(_decode_loop, static_argnames=("model", "max_len"))


def greedy_decode(model: CoCa, params, images, max_len: int):
    """Greedy captions int32 [N, max_len] in vljax's token format: pieces, EOS, PAD padding
    (a row without EOS ran out of room). Jitted (inline in a caller's jit), fixed shapes, no KV
    cache: each step reruns the decoder on the whole [N, max_len] buffer, where
    not-yet-generated slots hold PAD; the causal mask keeps them (and every later slot) out of
    the position being decided, and the START key is always attended. PAD is never emitted
    (it is not a training target).

    `params`: the model's params tree, or variables {"params": ...}.
    """
    if max_len < 1 or max_len > model.config["text"]["max_len"]:
        raise ValueError(f"max_len={max_len}: expected 1..{model.config['text']['max_len']}")
    variables = params if "params" in params else {"params": params}
    images = jnp.asarray(images)
    if isinstance(images, jax.core.Tracer):
        # Inside the caller's jit (the Encoder's, with the logical axis rules bound): traced
        # inline, so the rules reach the model; a nested jit's cache would not tell them apart.
        return _decode_loop(model, variables, images, max_len)
    return _jitted_decode_loop(model, variables, images, max_len)
