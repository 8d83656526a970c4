"""GradCache memory: compiled temporary bytes per device of the ViT-B/16 CLIP train step at
optimizer.accum_steps = K, from abstract inputs (nothing of full size is allocated).

    python benchmarks/grad_cache_memory.py [--devices 8] [--batch-size 512] [--accum 1 4 16]
        [--config.key=value ...] [--write]

The loss sees the whole batch at every K (vljax/train/step.py), so only the towers'
activations shrink with K: the temporaries are about one microbatch's activations plus the
whole batch's outputs, their gradients and the loss's logits. Compiled with XLA's CPU backend
at `--xla_backend_optimization_level=0` (LLVM code generation only; buffer assignment, hence
the byte counts, is the same) to keep each B/16 compile to seconds.
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SECTION = "GradCache memory (ViT-B/16)"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    from vljax.config import build_config, parse_overrides

    overrides, rest = parse_overrides(argv)
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/clip_vit_b16.py")
    parser.add_argument("--devices", type=int, default=8, help="fake CPU devices")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--accum", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--write", action="store_true", help="record in docs/benchmarks.md")
    args = parser.parse_args(rest)
    os.environ["XLA_FLAGS"] = (
        f"--xla_force_host_platform_device_count={args.devices} --xla_backend_optimization_level=0"
    )

    import jax

    from benchmarks.train_step import machine_name
    from vljax import sharding as shd
    from vljax.train.aot import build_train_step

    rows = []
    for accum in args.accum:
        config = build_config(
            args.config,
            [
                *overrides,
                ("batch_size", str(args.batch_size)),
                ("optimizer.accum_steps", str(accum)),
            ],
        )
        built = build_train_step(config)
        mesh = built.mesh
        start = time.perf_counter()
        compiled = built.step.lower(built.parts.abstract, built.batch).compile()
        seconds = time.perf_counter() - start
        memory = compiled.memory_analysis()
        row = {
            "config": os.path.basename(args.config),
            "machine": machine_name(),
            "devices": jax.device_count(),
            "mesh": "x".join(str(mesh.shape[a]) for a in mesh.axis_names),
            "batch": args.batch_size,
            "accum_steps": accum,
            "microbatch per device": args.batch_size
            // accum
            // shd.data_parallel_size(mesh, config.sharding),
            "temp MiB per device": memory.temp_size_in_bytes / 2**20,
            "argument MiB per device": memory.argument_size_in_bytes / 2**20,
            "compile s": seconds,
        }
        rows.append(row)
        print(row, flush=True)
    if args.write:
        from benchmarks.report import upsert_row

        note = (
            "`python benchmarks/grad_cache_memory.py --write`: the B/16 CLIP train step (bf16 "
            "compute, remat, scanned layers, FSDP) compiled from abstract inputs on fake CPU "
            "devices; temporaries per device from `memory_analysis()`. The loss sees the whole "
            "batch at every accum_steps (GradCache), so only the towers' activations shrink."
        )
        for row in rows:
            upsert_row(SECTION, row, key=("config", "machine", "batch", "accum_steps"), note=note)


if __name__ == "__main__":
    main()
