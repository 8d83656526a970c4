"""Small helpers shared by the sharded contrastive losses (shard_map bodies)."""

import math
import operator

import jax
import jax.numpy as jnp
from jax import lax

F32 = jnp.float32


def ring_chunk(b: int, chunk: int | None) -> int:
    """Columns per [b, chunk] float32 logit tile of the ring. Default: 512, lowered for very
    large b so that one tile stays <= 64 MiB (but >= 128 columns, for matmul efficiency)."""
    if chunk is None:
        chunk = min(512, max(128, 2**24 // b))
    return min(b, chunk)


def axis_size(mesh, batch_axes) -> int:
    """Number of devices along the (flattened) batch axes."""
    return math.prod(mesh.shape[a] for a in batch_axes)


def ring_perm(n: int) -> list[tuple[int, int]]:
    """Device i sends to i + 1 (flattened index over the batch axes)."""
    return [(i, (i + 1) % n) for i in range(n)]


def varying(x, batch_axes):
    """Marks a fresh (device-invariant) array as per-device, e.g. a loop accumulator."""
    return lax.pcast(x, tuple(batch_axes), to="varying")


def dot_nt(a, b):
    """a @ b.T with float32 accumulation (bf16 inputs stay bf16 on the MXU/tensor cores)."""
    return lax.dot_general(a, b, (((1,), (1,)), ((), ())), preferred_element_type=F32)


def dot_nn(a, b):
    """a @ b with float32 accumulation."""
    return lax.dot_general(a, b, (((1,), (0,)), ((), ())), preferred_element_type=F32)


def dot_tn(a, b):
    """a.T @ b with float32 accumulation."""
    return lax.dot_general(a, b, (((0,), (0,)), ((), ())), preferred_element_type=F32)


def diag_dots(x, y):
    """x_i . y_i in float32 (exact products of bf16 values, like the matmuls)."""
    return jnp.sum(x.astype(F32) * y.astype(F32), axis=-1)


def tile_start(c, b: int, chunk: int):
    """Start row of column tile c. The last tile is shifted back so that it stays inside the
    block (no padded copy of the block); its first columns were already seen and get masked."""
    return jnp.minimum(c * chunk, b - chunk)


def tile_mask(c, b: int, chunk: int):
    """[chunk] bool: columns of tile c not already covered by tile c - 1, or None if b % chunk
    == 0 (every tile is fresh)."""
    if b % chunk == 0:
        return None
    return tile_start(c, b, chunk) + jnp.arange(chunk) >= c * chunk


def num_tiles(b: int, chunk: int) -> int:
    return -(-b // chunk)


def ring_loop(n: int, step, carry):
    """Runs `step(t, carry, last)` for the n steps t of a ring (at step t a device holds the
    block of the device t places before it; t = 0 is its own block).

    A step that is not the last issues the ppermute of its travelling block first, so the
    transfer can overlap the step's compute; the last step sends no block (nobody needs it
    again). Steps 0..n-2 run in a fori_loop, so the program size does not grow with n.
    """
    if n > 1:
        carry = lax.fori_loop(0, n - 1, lambda t, c: step(t, c, False), carry)
    return step(n - 1, carry, True)


def pspec_batch(batch_axes):
    return jax.sharding.PartitionSpec(tuple(batch_axes))


def positive_int(value, message) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{message}; got {value!r}") from None
    if number < 1:
        raise ValueError(f"{message}; got {value!r}")
    return number


def check_batch_axes(mesh, batch_axes) -> tuple[str, ...]:
    if mesh is None:
        raise ValueError("the loss needs mesh= (a jax.sharding.Mesh)")
    if isinstance(batch_axes, str):
        batch_axes = (batch_axes,)
    batch_axes = tuple(batch_axes)
    if not batch_axes:
        raise ValueError("batch_axes must name at least one mesh axis")
    unknown = [a for a in batch_axes if a not in mesh.axis_names]
    if unknown or len(set(batch_axes)) != len(batch_axes):
        raise ValueError(
            f"batch_axes {batch_axes} must be distinct axes of the mesh {mesh.axis_names}"
        )
    return batch_axes


def devices_per_batch(batch: int, mesh, batch_axes) -> int:
    """The number of devices the batch axes span, after checking that the global batch splits
    evenly over them."""
    n = axis_size(mesh, batch_axes)
    if batch % n:
        raise ValueError(
            f"global batch {batch} is not divisible by the {n} devices of batch axes "
            f"{batch_axes} (mesh {dict(mesh.shape)})"
        )
    return n
