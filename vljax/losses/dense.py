"""The dense sharded losses: each device scores its rows against gathered columns
(all-gather; grouped aggregation gathers within a group)."""

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from vljax.losses._sharded import F32, axis_size, diag_dots, dot_nt, pspec_batch


def all_gather_loss(zimg, ztxt, scale, bias, *, kind, mesh, batch_axes):
    """Each device scores its b rows against all B gathered columns (and, for softmax, its b
    columns against all B gathered rows). Plain autodiff: the gather transposes into a
    reduce-scatter of the gradients."""
    n = axis_size(mesh, batch_axes)
    return dense_sharded_loss(
        zimg, ztxt, scale, bias, kind=kind, mesh=mesh, batch_axes=batch_axes, group_size=n
    )


def dense_sharded_loss(zimg, ztxt, scale, bias, *, kind, mesh, batch_axes, group_size):
    """Local rows against the columns gathered from the `group_size` consecutive devices of
    the device's group (all devices: the global loss). The result is always (1/B) * sum over
    all B rows of the row terms.

    Every term is computed relative to its own positive, so a small loss keeps float32
    precision (no lse ~ s minus l_ii ~ s): softmax rows are softplus(lse_{j != i} (l_ij -
    l_ii)), sigmoid positives are log_sigmoid(l_ii) itself.
    """
    batch = zimg.shape[0]
    n = axis_size(mesh, batch_axes)
    groups = None
    if group_size != n:
        groups = [list(range(g, g + group_size)) for g in range(0, n, group_size)]
    gather = partial(lax.all_gather, axis_name=batch_axes, axis_index_groups=groups, tiled=True)
    has_bias = bias is not None
    bias = jnp.zeros((), F32) if bias is None else bias

    def local(x, y, s, b):
        s = s.astype(F32)
        b = b.astype(F32) if has_bias else jnp.zeros((), F32)
        rows = x.shape[0]
        # The own block sits at this offset of the gathered columns: mark its diagonal.
        own = (lax.axis_index(batch_axes) % group_size) * rows + jnp.arange(rows)
        diag = own[:, None] == jnp.arange(group_size * rows)[None, :]
        dd = diag_dots(x, y)
        dtxt = dot_nt(x, gather(y))  # [b, B'] image i vs every gathered text
        if kind == "softmax":
            dimg = dot_nt(y, gather(x))  # [b, B'] text j vs every gathered image
            off = lambda d: jnp.where(diag, -jnp.inf, s * (d - dd[:, None]))
            lse = lambda d: jax.nn.logsumexp(off(d), axis=1)
            total = 0.5 * jnp.sum(jax.nn.softplus(lse(dtxt)) + jax.nn.softplus(lse(dimg)))
        else:
            logits = s * dtxt + b
            total = -jnp.sum(jax.nn.log_sigmoid(jnp.where(diag, logits, -logits)))
        return lax.psum(total, batch_axes) / batch

    spec = pspec_batch(batch_axes)
    fn = jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, P(), P()), out_specs=P())
    return fn(zimg, ztxt, scale, bias)
