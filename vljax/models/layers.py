"""Transformer building blocks shared by the image and text towers.

Parameter layout is chosen so that Hugging Face CLIP/SigLIP export is a reshape:
q/k/v/out are separate DenseGeneral kernels `[embed, heads, kv]` / `[heads, kv, embed]`,
norms keep `scale`/`bias`, every weight matrix is called `kernel` (weight decay keys on it).
"""

import re
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

from vljax.choices import ACTIVATIONS, ATTENTIONS, DTYPES, REMAT_POLICIES, expected
from vljax.errors import ConfigError

Dtype = jnp.dtype

# Name of the leading axis that `nn.scan` adds to stacked layer params.
LAYERS_AXIS = "layers"


def activation_fn(name: str) -> Callable:
    if name == "gelu":
        return lambda x: nn.gelu(x, approximate=False)
    if name == "gelu_tanh":
        return lambda x: nn.gelu(x, approximate=True)
    if name == "quick_gelu":
        # OpenAI CLIP's approximation; HF calls it "quick_gelu".
        return lambda x: x * jax.nn.sigmoid(1.702 * x)
    raise ValueError(f"model.activation={name!r}: expected {expected(ACTIVATIONS)}")


def encoder_options(model_config) -> dict:
    """The keyword arguments every transformer tower takes from `config.model` (a frozen dict):
    activation, norm epsilon, compute dtype, attention, remat and scan. Keys that an imported
    Hugging Face config lacks take their defaults."""
    c = model_config
    return dict(
        activation=c["activation"],
        ln_eps=c["ln_eps"],
        dtype=compute_dtype(c["dtype"]),
        attention=c.get("attention", "xla"),
        remat=c["remat"],
        remat_policy=c.get("remat_policy", "full"),
        scan=c["scan"],
    )


def compute_dtype(name: str) -> Dtype:
    if name not in ("float32", "bfloat16"):
        raise ConfigError(f"model.dtype={name!r}: expected {expected(DTYPES)}")
    return jnp.dtype(name)


def partitioned(init, axes):
    """`init` with logical axis names for the params' shardings (vljax.sharding.param_shardings).

    rules=() makes unboxing the value a no-op rather than a sharding constraint under the rules
    bound while a model is traced (vljax.sharding.activation_sharding): flax's DenseGeneral
    unboxes its flattened 2-D kernel under the 3 names of the real one, which fails, and jit's
    in/out shardings already place the params."""
    return nn.with_logical_partitioning(init, axes, rules=())


def layer_norm(eps: float, dtype: Dtype, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(
        epsilon=eps,
        dtype=dtype,
        param_dtype=jnp.float32,
        scale_init=partitioned(nn.initializers.ones, ("embed",)),
        bias_init=partitioned(nn.initializers.zeros, ("embed",)),
        name=name,
    )


def constrain(x, axes):
    """Shards activation `x` by logical axis names; a no-op unless rules and a mesh are bound
    (vljax.sharding.activation_sharding: the train step and the eval encoder bind them)."""
    return nn.with_logical_constraint(x, axes)


class MlpBlock(nn.Module):
    mlp_dim: int
    activation: str = "gelu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        width = x.shape[-1]
        dense = lambda feats, axes, name: nn.Dense(
            feats,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=partitioned(nn.initializers.xavier_uniform(), axes),
            bias_init=partitioned(nn.initializers.normal(1e-6), axes[-1:]),
            name=name,
        )
        x = dense(self.mlp_dim, ("embed", "mlp"), "fc1")(x)
        x = activation_fn(self.activation)(x)
        x = constrain(x, ("batch", "length", "act_mlp"))
        return dense(width, ("mlp", "embed"), "fc2")(x)


def attend(q, k, v, mask, impl: str, dtype: Dtype):
    """softmax(q k^T / sqrt(d)) v over `[B, L, heads, head_dim]` q, k, v; `mask` boolean
    `[B, 1 | heads, Lq, Lk]` (True = attend) or None. Logits and softmax in float32.

    impl "xla": einsum + softmax, written out. "cudnn": `jax.nn.dot_product_attention`, whose
    fused cuDNN kernel (flash attention) runs on GPU and never materialises the `[Lq, Lk]`
    weights in device memory; elsewhere the same call with its XLA implementation, so the
    CPU tests run the code path the GPU runs, up to the kernel."""
    if impl == "xla":
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / np.sqrt(q.shape[-1])
        if mask is not None:
            logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(logits, axis=-1).astype(dtype)
        return jnp.einsum("bhqk,bkhd->bqhd", weights, v)
    if impl == "cudnn":
        return fused_attention(q, k, v, mask)
    raise ConfigError(f"model.attention={impl!r}: expected {expected(ATTENTIONS)}")


def fused_attention(q, k, v, mask):
    """`jax.nn.dot_product_attention` with cuDNN on GPU (its XLA form elsewhere), on the shapes
    the kernel takes: in training it refuses odd sequence lengths (ViT-B/16's 197 tokens, a
    MAP probe's 1 query), so an odd length is padded by one token that no real query attends
    to and whose output is dropped; a mask is given in full, `[B, 1, Lq, Lk]` (a bias that
    broadcasts over queries is refused too). The same padding runs on every backend, so CPU
    tests cover it. Padding here, per call, measured faster on an H200 than padding each
    tower's residual stream once before its blocks (181 against 188 ms per ViT-B/16 step:
    the layout changes moved from these pads and slices into transposes around the kernel;
    docs/benchmarks.md)."""
    lq, lk = q.shape[1], k.shape[1]
    pad_q, pad_k = lq % 2, lk % 2
    rows = lambda x, n: jnp.pad(x, ((0, 0), (0, n), (0, 0), (0, 0))) if n else x
    q, k, v = rows(q, pad_q), rows(k, pad_k), rows(v, pad_k)
    kv_lengths = None
    if mask is not None:
        mask = jnp.broadcast_to(mask, (mask.shape[0], mask.shape[1], lq, lk))
        mask = jnp.pad(mask, ((0, 0), (0, 0), (0, pad_q), (0, pad_k)))  # padding: False
    elif pad_k:
        kv_lengths = jnp.full((q.shape[0],), lk, jnp.int32)
    kernel = "cudnn" if jax.default_backend() == "gpu" else "xla"
    out = jax.nn.dot_product_attention(
        q, k, v, mask=mask, key_value_seq_lengths=kv_lengths, implementation=kernel
    )
    return out[:, :lq]


def remat_policy_fn(name: str):
    """The `jax.checkpoint` policy of `model.remat_policy`."""
    if name == "full":
        return None  # nothing saveable
    if name == "dots_saveable":
        return jax.checkpoint_policies.dots_saveable
    raise ConfigError(f"model.remat_policy={name!r}: expected {expected(REMAT_POLICIES)}")


class Attention(nn.Module):
    """Multi-head attention; `mask` is boolean `[B, 1 | heads, Lq, Lk]`, True = attend."""

    heads: int
    dtype: Dtype = jnp.float32
    impl: str = "xla"  # model.attention (`attend`)
    # The output projection starts at zero, so a residual branch of it adds nothing at init
    # (Frozen in Time's temporal attention: image weights then compute the image ViT).
    zero_out: bool = False
    kernel_init: Callable | None = None  # q/k/v/out kernels; None = Xavier uniform

    @nn.compact
    def __call__(self, inputs_q, inputs_kv, mask=None):
        width = inputs_q.shape[-1]
        if width % self.heads:
            raise ConfigError(f"width {width} is not divisible by heads {self.heads}")
        head_dim = width // self.heads
        kernel_init = self.kernel_init or nn.initializers.xavier_uniform()

        def proj(name):
            return nn.DenseGeneral(
                (self.heads, head_dim),
                dtype=self.dtype,
                param_dtype=jnp.float32,
                kernel_init=partitioned(kernel_init, ("embed", "heads", "kv")),
                bias_init=partitioned(nn.initializers.zeros, ("heads", "kv")),
                name=name,
            )

        q = proj("query")(inputs_q)
        k = proj("key")(inputs_kv)
        v = proj("value")(inputs_kv)
        q = constrain(q, ("batch", "length", "act_heads", None))
        out = attend(q, k, v, mask, self.impl, self.dtype)
        out_init = nn.initializers.zeros if self.zero_out else kernel_init
        return nn.DenseGeneral(
            width,
            axis=(-2, -1),
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=partitioned(out_init, ("heads", "kv", "embed")),
            bias_init=partitioned(nn.initializers.zeros, ("embed",)),
            name="out",
        )(out)


class EncoderBlock(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x)).

    `frames` > 0: divided space-time attention (Frozen in Time, arXiv 2104.00650): the rows
    of x come in clips of `frames` consecutive frames, and the block first adds
    time_attn(ln_time(x)), each token attending to the same position in the clip's other
    frames, with its output projection zero at init; then the spatial block as above."""

    heads: int
    mlp_dim: int
    activation: str = "gelu"
    ln_eps: float = 1e-5
    dtype: Dtype = jnp.float32
    attention: str = "xla"
    frames: int = 0
    scanned: bool = False  # nn.scan wants (carry, output)

    @nn.compact
    def __call__(self, x, mask=None, frame_valid=None):
        """`frame_valid` (bool [clips, frames], with `frames` > 0): which frames of each clip
        are real; the temporal attention attends to those only (an image in a clip's place
        is one real frame: vljax/models/video_clip.py)."""
        x = constrain(x, ("batch", "length", "act_embed"))
        if self.frames:
            n, length, width = x.shape
            clips, f = n // self.frames, self.frames
            y = layer_norm(self.ln_eps, self.dtype, "ln_time")(x)
            # [clips * f, L, W] -> [clips * L, f, W]: one sequence over time per position.
            y = y.reshape(clips, f, length, width).transpose(0, 2, 1, 3)
            y = y.reshape(clips * length, f, width)
            time_mask = None
            if frame_valid is not None:
                time_mask = jnp.broadcast_to(frame_valid[:, None, :], (clips, length, f))
                time_mask = time_mask.reshape(clips * length, 1, 1, f)
            attn = Attention(
                self.heads, self.dtype, self.attention, zero_out=True, name="time_attn"
            )
            y = attn(y, y, time_mask).reshape(clips, length, f, width).transpose(0, 2, 1, 3)
            x = x + y.reshape(n, length, width)
        y = layer_norm(self.ln_eps, self.dtype, "ln_1")(x)
        x = x + Attention(self.heads, self.dtype, self.attention, name="attn")(y, y, mask)
        y = layer_norm(self.ln_eps, self.dtype, "ln_2")(x)
        x = x + MlpBlock(self.mlp_dim, self.activation, self.dtype, name="mlp")(y)
        x = constrain(x, ("batch", "length", "act_embed"))
        return (x, None) if self.scanned else x


class Encoder(nn.Module):
    """A stack of `depth` blocks; `scan` compiles one block, `remat` recomputes in backward.

    Unscanned params live under `encoderblock_{i}`, scanned ones under `encoderblock` with a
    leading `layers` axis; `stack_layers` / `unstack_layers` convert between the two.
    """

    depth: int
    heads: int
    mlp_dim: int
    activation: str = "gelu"
    ln_eps: float = 1e-5
    dtype: Dtype = jnp.float32
    attention: str = "xla"  # model.attention
    remat: bool = False
    remat_policy: str = "full"  # model.remat_policy
    scan: bool = False
    frames: int = 0  # > 0: divided space-time attention over clips of this many rows

    @nn.compact
    def __call__(self, x, mask=None, frame_valid=None):
        kw = dict(heads=self.heads, mlp_dim=self.mlp_dim, activation=self.activation,
                  ln_eps=self.ln_eps, dtype=self.dtype, attention=self.attention,
                  frames=self.frames)  # fmt: skip
        shared = (mask,) if frame_valid is None else (mask, frame_valid)
        return block_stack(
            EncoderBlock, self.depth, kw, self.remat, self.scan, x, *shared,
            remat_policy=self.remat_policy,
        )  # fmt: skip


def block_stack(block, depth: int, kw: dict, remat: bool, scan: bool, x, *shared,
                remat_policy: str = "full"):  # fmt: skip
    """Runs `depth` blocks `block(**kw)` over x, each also given the `shared` arguments (a
    mask, a memory). Call it inside a compact method: the blocks become that module's
    submodules `encoderblock_{i}` (scanned: one `encoderblock` with a leading `layers` axis;
    `remat` recomputes each block in the backward pass, keeping what `remat_policy` saves)."""
    if remat:
        block = nn.remat(block, prevent_cse=not scan, policy=remat_policy_fn(remat_policy))
    if scan:
        stack = nn.scan(
            block,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(nn.broadcast,) * len(shared),
            length=depth,
            metadata_params={nn.PARTITION_NAME: LAYERS_AXIS},
        )
        x, _ = stack(**kw, scanned=True, name="encoderblock")(x, *shared)
        return x
    for i in range(depth):
        x = block(**kw, name=f"encoderblock_{i}")(x, *shared)
    return x


_BLOCK_RE = re.compile(r"^encoderblock_(\d+)$")


def unstack_layers(tree):
    """Scanned `encoderblock` (leading depth axis) -> `encoderblock_{i}`; recursive, pure."""
    if not isinstance(tree, dict):
        return tree
    out = {}
    for key, sub in tree.items():
        if key == "encoderblock":
            depth = jax.tree.leaves(sub)[0].shape[0]
            for i in range(depth):
                out[f"encoderblock_{i}"] = jax.tree.map(lambda a, i=i: a[i], sub)
        else:
            out[key] = unstack_layers(sub)
    return out


def stack_layers(tree):
    """Inverse of `unstack_layers`: `encoderblock_{i}` -> `encoderblock` with a depth axis."""
    if not isinstance(tree, dict):
        return tree
    blocks = sorted((int(m.group(1)), k) for k in tree if (m := _BLOCK_RE.match(k)) is not None)
    out = {k: stack_layers(v) for k, v in tree.items() if not _BLOCK_RE.match(k)}
    if blocks:
        if [i for i, _ in blocks] != list(range(len(blocks))):
            raise ValueError(f"encoder blocks are not numbered 0..n-1: {[k for _, k in blocks]}")
        subs = [tree[k] for _, k in blocks]
        out["encoderblock"] = jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *subs)
    return out


def freeze(d) -> FrozenDict:
    """A config dict as a Flax module attribute: modules must be hashable, dicts are not."""
    return FrozenDict({k: freeze(v) if isinstance(v, dict) else v for k, v in d.items()})


def l2_normalize(x, axis=-1):
    """x / |x| along `axis`, in float32 (also under bf16 compute); zero rows stay zero."""
    x = jnp.asarray(x).astype(jnp.float32)
    return x / jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True) + 1e-12)
