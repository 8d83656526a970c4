"""Convolution stem pieces written as matmuls, which XLA runs faster on the slower CPU kind.

On the slower 2-core kind (AMD EPYC, AVX2), where `make demo`'s time budget is set, XLA's
CPU convolution and the select-and-scatter that differentiates `reduce_window` max pooling
are slower than a matmul of the same FLOPs on the demo's small channel counts; on the
AVX-512 kind the convolution is faster at 32 and 16 px (the figures: benchmarks/stem.py,
docs/benchmarks.md "Conv stem on CPU"). Both forms compute the same function as
`nn.Conv(padding="SAME")` and `nn.max_pool((2, 2), strides=(2, 2))`, and keep `nn.Conv`'s
parameter names and shapes, so checkpoints do not depend on which is used.
"""

import flax.linen as nn
import jax.numpy as jnp

from vljax.models.layers import Dtype, partitioned


class Conv3x3(nn.Module):
    """3x3 convolution, stride 1, SAME padding, as one matmul over the 9 shifted copies of the
    input (im2col). Params `kernel` [3, 3, in, out] and `bias` [out], as `nn.Conv`."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        n, h, w, c = x.shape
        kernel = self.param(
            "kernel",
            partitioned(nn.initializers.lecun_normal(), (None, None, None, None)),
            (3, 3, c, self.features),
            jnp.float32,
        )
        bias = self.param(
            "bias", partitioned(nn.initializers.zeros, (None,)), (self.features,), jnp.float32
        )
        x = x.astype(self.dtype)
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        # [n, h, w, 9 * c], channel index (i * 3 + j) * c + k, the row-major order of the
        # kernel's leading [3, 3, c] axes.
        cols = jnp.concatenate(
            [padded[:, i : i + h, j : j + w, :] for i in range(3) for j in range(3)], axis=-1
        )
        y = cols @ kernel.reshape(9 * c, self.features).astype(self.dtype)
        return y + bias.astype(self.dtype)


def max_pool_2x2(x):
    """2x2 max pooling, stride 2, VALID (an odd last row or column is dropped), as a reshape
    and a max: its gradient is an elementwise mask instead of a select-and-scatter. On ties
    the gradient is shared among the maxima rather than given to the first (both are
    subgradients)."""
    n, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2, :]
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
