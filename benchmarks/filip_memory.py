"""FILIP's per-device memory: the compiled value-and-grad of `filip_loss`, tiled (default
chunk) against one tile of all B texts (the dense [b, B, Np, Nt] interaction), at ViT-B/16
sizes on 8 fake CPU devices. Nothing runs: XLA's memory analysis of the sharded program.

    python benchmarks/filip_memory.py [--batch 1024] [--write]

Writes the table to docs/benchmarks.md ("FILIP late-interaction loss memory").
"""

import argparse
import os
import sys

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from benchmarks.report import upsert_row  # noqa: E402
from benchmarks.train_step import machine_name  # noqa: E402
from vljax.losses import filip_loss  # noqa: E402
from vljax.losses.filip import filip_chunk  # noqa: E402

MIB = 2**20


def compiled_temp_mib(batch, n_img, n_txt, dim, mesh, chunk):
    spec = NamedSharding(mesh, P("data"))
    shapes = (
        jax.ShapeDtypeStruct((batch, n_img, dim), jnp.bfloat16),
        jax.ShapeDtypeStruct((batch, n_txt, dim), jnp.bfloat16),
        jax.ShapeDtypeStruct((batch, n_txt), jnp.bool_),
        jax.ShapeDtypeStruct((), jnp.float32),
    )
    fn = lambda x, y, m, s: filip_loss(x, y, m, scale=s, mesh=mesh, chunk=chunk)
    grad = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)), in_shardings=(spec,) * 3 + (None,))
    analysis = grad.lower(*shapes).compile().memory_analysis()
    return analysis.temp_size_in_bytes / MIB


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--patches", type=int, default=196)  # 224 px, patch 16
    parser.add_argument("--text-len", type=int, default=77)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    devices = 8
    mesh = Mesh(np.array(jax.devices()[:devices]), ("data",))
    b = args.batch // devices
    full_block = 4 * b * args.batch * args.patches * args.text_len / MIB
    chunk = filip_chunk(b, args.batch, args.patches, args.text_len, None)
    for name, c in (("tiled (default chunk)", None), ("dense (chunk = B)", args.batch)):
        row = {
            "machine": machine_name(),
            "devices": devices,
            "B": args.batch,
            "Np x Nt x D": f"{args.patches} x {args.text_len} x {args.dim}",
            "computation": name,
            "chunk": chunk if c is None else c,
            "temp_MiB_per_device": compiled_temp_mib(
                args.batch, args.patches, args.text_len, args.dim, mesh, c
            ),
            "[b, B, Np, Nt] f32 MiB": full_block,
        }
        print(row)
        if args.write:
            note = (
                "`python benchmarks/filip_memory.py --write`: per-device temporary memory of "
                "the compiled value-and-grad of `vljax.losses.filip_loss` (bf16 tokens) on 8 "
                "fake CPU devices, from XLA's memory analysis (not run). Tiled: the default "
                "chunk keeps one float32 [b, chunk, Np, Nt] tile <= 16 MiB; dense: one tile "
                "of all B texts, i.e. the [b, B, Np, Nt] interaction a direct implementation "
                "holds."
            )
            upsert_row(
                "FILIP late-interaction loss memory",
                row,
                key=("machine", "B", "Np x Nt x D", "computation"),
                note=note,
            )


if __name__ == "__main__":
    main()
