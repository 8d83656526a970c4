"""Convolution stem pieces written as matmuls, because that is what XLA runs fast on CPU.

XLA's CPU convolution and the select-and-scatter that differentiates `reduce_window` max
pooling are several times slower than a matmul of the same FLOPs on the demo's small
channel counts (on a 2-core AMD EPYC, the 16 -> 32 channel 3x3 conv at 32 x 32 px took 461 ms
fwd+bwd as `conv_general_dilated` and 211 ms as im2col + matmul; 2x2 pooling 179 ms as
`reduce_window` and 76 ms as reshape + max; benchmarks/stem.py). Both compute the same
function as `nn.Conv(padding="SAME")` and `nn.max_pool((2, 2), strides=(2, 2))`, and keep
`nn.Conv`'s parameter names and shapes, so checkpoints do not depend on which is used.
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
