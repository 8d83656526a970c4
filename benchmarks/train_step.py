"""Train-step throughput: step time, images/s and model FLOPs utilisation for a config.

    python benchmarks/train_step.py --config configs/demo.py [--batch-size N] [--steps N]
        [--config.key=value ...] [--peak-tflops T] [--devices N] [--write]

FLOPs per step come from the compiled step's `cost_analysis()`. MFU = achieved FLOP/s over
the device's peak: on GPU pass --peak-tflops (H100 SXM bf16 dense: 989); on CPU the peak is
measured here as the best float32 matmul rate, so CPU MFU reads "fraction of what this CPU's
matmul can do".
"""

import argparse
import os
import platform
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vljax.host_malloc import needs_malloc_tunables, reexec_with_malloc_tunables  # noqa: E402


def cpu_peak_flops(n=1024, repeats=20):
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def cpu_model():
    """'AMD EPYC, AVX2' / '..., AVX-512' from /proc/cpuinfo: the vector width sets the float32
    matmul rate (3x apart between two 2-core machines of this project's CI)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                 if ln.startswith("model name")), platform.machine())  # fmt: skip
    isa = "AVX-512" if "avx512f" in info else "AVX2" if "avx2" in info else platform.machine()
    return f"{name}, {isa}"


def machine_name():
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"CPU {cpu_model()}, {os.cpu_count()} cores"
    return f"{jax.device_count()} x {device.device_kind}"


def main(argv=None):
    if argv is None:  # as `vljax train` runs (vljax/host_malloc.py)
        reexec_with_malloc_tunables()
    argv = list(sys.argv[1:] if argv is None else argv)
    from vljax.config import build_config, parse_overrides

    overrides, rest = parse_overrides(argv)
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/demo.py")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--devices", type=int, default=None, help="fake CPU devices")
    parser.add_argument("--write", action="store_true", help="record in docs/benchmarks.md")
    args = parser.parse_args(rest)
    if args.devices:
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"

    import jax
    import ml_collections
    import numpy as np

    from vljax import sharding as shd
    from vljax.methods import get_method
    from vljax.train.aot import build_train_step, compiled_flops
    from vljax.train.state import init_state, num_params

    config = build_config(args.config, overrides)
    if args.batch_size:
        config.batch_size = args.batch_size
    built = build_train_step(config)
    parts, mesh, step_fn = built.parts, built.mesh, built.step
    state = init_state(parts, 0)

    # The method's batch fields (built.batch: images and clips uint8, as the loader ships
    # them): random pixels, random token ids below every tower's vocabulary, the rest (clip
    # lengths) as the method's example batch has them.
    rng = np.random.default_rng(0)
    example = get_method(config.method).example_batch(config.model, config.batch_size)
    vocab = min(
        sub.vocab_size
        for sub in config.model.values()
        if isinstance(sub, ml_collections.ConfigDict) and "vocab_size" in sub
    )
    local = {}
    for name, field in built.batch.items():
        if field.dtype == np.uint8:
            local[name] = rng.integers(0, 256, field.shape, dtype=np.uint8)
        elif name.endswith("tokens"):
            local[name] = rng.integers(3, vocab, field.shape).astype(field.dtype)
        else:
            local[name] = np.asarray(example[name])
    batch = shd.global_batch(local, mesh, config.sharding)
    compiled = step_fn.lower(state, batch).compile()
    flops = compiled_flops(compiled)
    memory = compiled.memory_analysis()

    state, metrics = step_fn(state, batch)  # warm-up
    jax.block_until_ready(metrics)
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(args.steps):
        t = time.perf_counter()
        state, metrics = step_fn(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.steps
    step_time = float(np.median(times))
    # cost_analysis counts the FLOPs of one device's program; all devices run one each.
    total_flops = flops * jax.device_count()
    if args.peak_tflops:
        peak = args.peak_tflops * 1e12 * jax.device_count()
    elif jax.devices()[0].platform == "cpu":
        peak = cpu_peak_flops()  # all fake devices share the same cores
    else:
        peak = None
    row = {
        "config": args.config + "".join(f" {k}={v}" for k, v in overrides),
        "machine": machine_name(),
        "devices": jax.device_count(),
        "params_M": num_params(state.params) / 1e6,
        "batch": config.batch_size,
        "dtype": config.model.dtype,
        "step_ms": step_time * 1e3,
        "images_per_s": config.batch_size / step_time,
        "gflops_per_step": total_flops / 1e9,
        "achieved_tflops": total_flops / step_time / 1e12,
        "peak_gflops": peak / 1e9 if peak else float("nan"),
        "mfu": (total_flops / step_time / peak) if peak else float("nan"),
        "temp_mib": (memory.temp_size_in_bytes / 2**20) if memory else float("nan"),
        "page_faults_per_step": faults,  # minor faults; see vljax/host_malloc.py
        "malloc": "system" if needs_malloc_tunables(os.environ) else "vljax tunables",
    }
    for key, value in row.items():
        print(f"{key:>16}: {value:.4g}" if isinstance(value, float) else f"{key:>16}: {value}")
    if args.write:
        from benchmarks.report import upsert_row

        note = (
            "`make bench` = `python benchmarks/train_step.py --config configs/demo.py --write` "
            "(add `--devices 8` for 8 fake CPU devices). Median of 10 steps after warm-up; "
            "FLOPs from the compiled step's cost_analysis; CPU MFU is relative to the best "
            "measured float32 matmul rate of this CPU. ViT-B/16 on a GPU: `## GPU: CLIP training "
            "on one device` below (`benchmarks/gpu.py`)."
        )
        key = ("config", "machine", "devices", "batch", "malloc")
        upsert_row("Train step", row, key=key, note=note)
    return row


if __name__ == "__main__":
    main()
