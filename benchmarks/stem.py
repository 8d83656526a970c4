"""Conv stem on CPU: XLA's convolution and reduce_window pooling against the matmul forms the
model uses (vljax/models/conv.py), fwd+bwd per stem layer at the demo's shapes.

    python benchmarks/stem.py [--config configs/demo.py] [--write]
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def best_ms(fn, *args, repeats=5):
    import jax

    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/demo.py")
    parser.add_argument("--write", action="store_true", help="record in docs/benchmarks.md")
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    from benchmarks.train_step import machine_name
    from vljax.config import build_config
    from vljax.models.conv import Conv3x3, max_pool_2x2

    config = build_config(args.config, [])
    image = config.model.image
    n, size = config.batch_size, image.image_size
    steps = int(np.log2(image.patch_size))
    rng = np.random.default_rng(0)

    def lax_conv(x, kernel):
        dims = ("NHWC", "HWIO", "NHWC")
        return lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=dims)

    def im2col_conv(x, kernel):
        params = {"kernel": kernel, "bias": jnp.zeros(kernel.shape[-1])}
        return Conv3x3(kernel.shape[-1]).apply({"params": params}, x)

    def reduce_window_pool(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    rows = []
    channels = 3
    for i in range(steps):
        features = min(image.get("stem_width", 16) * 2**i, image.width)
        x = jnp.asarray(rng.normal(size=(n, size, size, channels)), jnp.float32)
        kernel = jnp.asarray(rng.normal(size=(3, 3, channels, features)) * 0.1, jnp.float32)
        y = jnp.asarray(rng.normal(size=(n, size, size, features)), jnp.float32)
        row = {"machine": machine_name(), "layer": f"{size}px {channels}->{features}", "batch": n}
        for name, conv in (("conv_general_dilated", lax_conv), ("im2col_matmul", im2col_conv)):
            loss = lambda k, x, conv=conv: jnp.sum(conv(x, k) ** 2)
            row[f"{name}_ms"] = best_ms(jax.jit(jax.grad(loss, argnums=(0, 1))), kernel, x)
        for name, pool in (("reduce_window", reduce_window_pool), ("reshape_max", max_pool_2x2)):
            loss = lambda y, pool=pool: jnp.sum(pool(y) ** 2)
            row[f"{name}_pool_ms"] = best_ms(jax.jit(jax.grad(loss)), y)
        rows.append(row)
        print(
            "  ".join(
                f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
            )
        )
        channels, size = features, size // 2

    if args.write:
        from benchmarks.report import upsert_row

        note = (
            f"`python benchmarks/stem.py --write`: the `{args.config}` conv_pool stem, one row per "
            "3x3 conv + 2x2 max-pool layer, fwd+bwd (conv: gradients of input and kernel), best "
            "of 5, ms. The model uses the im2col matmul and reshape-max forms "
            "(vljax/models/conv.py); the XLA ops are the reference they replace."
        )
        for row in rows:
            upsert_row("Conv stem on CPU", row, key=("machine", "layer", "batch"), note=note)


if __name__ == "__main__":
    main()
