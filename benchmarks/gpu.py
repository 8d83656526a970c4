"""CLIP training on one GPU: ViT-B/16 CLIP and SigLIP at bf16 against open_clip, each lever
on and off, the ring loss at large batch, and the input pipeline.

    python benchmarks/gpu.py [--sections a,b,...] [--budget-s 480] [--out results.json]
    python benchmarks/gpu.py --cpu            # the same code at tiny shapes on CPU (tested)
    python benchmarks/gpu.py --render results.json [--write]   # the docs/benchmarks.md tables

Sections, in the order they run (each is skipped once --budget-s is spent, and a failure in
one is recorded and does not stop the next). Each train-step config and the ring figures run
in a process of their own, so that one program's memory does not shrink the next one's:
  peak      a large bf16 matmul: the rate MFU is also quoted against ("measured peak")
  clip      configs/clip_vit_b16.py at --batch: step time (median of per-step times after
            warm-up), images/s, model FLOPs per image (vljax/models/flops.py, analytic), MFU
            against 989 TFLOP/s (H100/H200 dense bf16) and the measured peak, the compiled
            program's bytes (arguments + outputs + temporaries, less donated) and the device's
            peak bytes in use; also the trainer's way of feeding it (a host batch put on the
            device before each step, metrics read a step late, as vljax/train/loop.py does);
            and 3 steps under jax.profiler: device ms per step by kernel kind (matmul,
            attention, convolution, copies, other fusions) and the largest kernels, the trace
            kept beside --out as gpu_trace.json.gz
  flags     CLIP at --batch (and the matmul peak) under each of FLAG_SETS' XLA_FLAGS
  open_clip open_clip's ViT-B-16, bf16 autocast, torch.compile'd, AdamW, same batch, same GPU,
            in a subprocess (open_clip_torch beside the GPU machine's torch)
  levers    CLIP at --batch with one setting changed: attention xla, remat dots_saveable,
            scanned layers, remat full, loss ring, no donation
  siglip    configs/siglip_vit_b16.py at --batch
  ring      the softmax loss alone, forward + backward, one device, B from 16k to 256k (or
            --ring): ring (P = 1, column tiles) and all_gather (dense B x B) where it fits
  loader    benchmarks/loader.py's 224 px JPEG ArrayRecord pipeline with 0..16 workers
  sweep     CLIP at the other --sweep batch sizes (a size whose program does not fit in the
            device's memory is reported as such, not run)
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.report import replace_section  # noqa: E402  (no jax: env is set in main)

SPEC_TFLOPS = 989.0  # H100 / H200 SXM dense bf16, the datasheet figure MFU is quoted in
SECTIONS = ("peak", "clip", "flags", "open_clip", "levers", "siglip", "ring", "loader", "sweep")
RECIPES = {"clip": "configs/clip_vit_b16.py", "siglip": "configs/siglip_vit_b16.py"}
# The fastest settings found on the H200 (docs/benchmarks.md); each lever changes one.
BASELINE = {
    "model.dtype": "bfloat16",
    "model.attention": "cudnn",
    "model.remat": "false",
    "model.scan": "false",
    "loss.impl": "all_gather",
    "mesh.fsdp": "1",
}
LEVERS = {
    "attention xla": {"model.attention": "xla"},
    "remat dots_saveable": {"model.remat": "true", "model.remat_policy": "dots_saveable"},
    "scanned layers": {"model.scan": "true"},
    "remat full": {"model.remat": "true", "model.remat_policy": "full"},
    "loss ring": {"loss.impl": "ring"},
    "no donation": {},  # make_train_step(donate=False)
}
# XLA_FLAGS sets, each timed on CLIP at --batch in a process of its own (an unknown flag
# fails that process only, and is recorded).
FLAG_SETS = {
    "latency-hiding scheduler": "--xla_gpu_enable_latency_hiding_scheduler=true "
    "--xla_gpu_enable_highest_priority_async_stream=true",
    "cuBLAS for every matmul (Triton GEMM off)": "--xla_gpu_enable_triton_gemm=false",
    # Layer norms as cuDNN kernels, not XLA reduction fusions: norms are a large part of the
    # step's memory-bound fusions (docs/benchmarks.md, the kernel profile).
    "cuDNN layer norm": "--xla_gpu_enable_cudnn_layer_norm=true",
}
# Tiny shapes for --cpu: every section's code runs, in seconds.
TINY = {
    "model.image.image_size": "32",
    "model.image.patch_size": "8",
    "model.image.width": "64",
    "model.image.depth": "1",
    "model.image.heads": "2",
    "model.image.mlp_dim": "128",
    "model.text.max_len": "8",
    "model.text.width": "64",
    "model.text.depth": "1",
    "model.text.heads": "2",
    "model.text.mlp_dim": "128",
    "model.text.vocab_size": "256",
    "tokenizer.vocab_size": "256",
    "model.embed_dim": "64",
}


def profile(cpu: bool) -> dict:
    if cpu:
        return dict(batch=8, sweep=(16,), ring=(256, 1024), matmul=128, ramp_s=0.0, steps=2,
                    warmup=1, tiny=TINY, oc_model=None, loader_workers=(0,),
                    loader_images=128)  # fmt: skip
    return dict(batch=512, sweep=(1024, 2048), ring=(16384, 65536, 131072, 262144),
                matmul=8192, ramp_s=1.0, steps=10, warmup=2, tiny={}, oc_model="ViT-B-16",
                loader_workers=(0, 8, 16), loader_images=512)  # fmt: skip


class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


def machine_name() -> str:
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return f"{jax.device_count()} x {device.device_kind}"


def matmul_peak(n: int, ramp_s: float = 1.0) -> dict:
    """bf16 [n, n] @ [n, n] on random data after `ramp_s` seconds of warm-up (a second on the
    GPU; none with --cpu, whose figure only shows that the code runs): one program of 10
    chained products (x <- x @ b, b scaled to keep x's size), median of 5 calls, so neither
    the host's dispatch nor an output allocation per product is timed. (Timing single
    products, or 20 dispatched back to back each with a fresh output, read 280-590 TFLOP/s
    on one H200 in one session.)"""
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.key(0), 2)
    a, b = (jax.random.normal(k, (n, n), jnp.float32) for k in keys)
    a, b = a.astype(jnp.bfloat16), (b / jnp.sqrt(n)).astype(jnp.bfloat16)
    chained = 10
    f = jax.jit(lambda x, y: jax.lax.fori_loop(0, chained, lambda _, z: z @ y, x))
    f(a, b).block_until_ready()
    t = time.perf_counter()
    while time.perf_counter() - t < ramp_s:  # the clocks ramp up from idle
        f(a, b).block_until_ready()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        f(a, b).block_until_ready()
        times.append(time.perf_counter() - t)
    return {"n": n, "tflops": chained * 2 * n**3 / statistics.median(times) / 1e12}


def device_bytes_limit():
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("bytes_limit"), stats.get("peak_bytes_in_use")


def program_bytes(compiled) -> int | None:
    m = compiled.memory_analysis()
    if m is None:
        return None
    return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
            - m.alias_size_in_bytes)  # fmt: skip


# Kernel name patterns, tried in order: the first that matches names the kernel's kind.
KERNEL_KINDS = (
    ("attention", ("sdpa", "flash", "fmha", "attention", "cudnn::fusion")),
    ("convolution", ("fprop", "dgrad", "wgrad", "implicit_gemm", "nhwc")),
    ("matmul", ("gemm", "gemv", "cutlass", "xmma", "nvjet", "cublas", "wgmma", "dot")),
    ("copy", ("memcpy", "memset", "copy")),
)


def kernel_kind(name: str) -> str:
    lower = name.lower()
    for kind, patterns in KERNEL_KINDS:
        if any(p in lower for p in patterns):
            return kind
    return "other (fusions: elementwise, norms, reductions)"


def kernel_breakdown(trace: dict, steps: int, top: int = 25) -> dict:
    """Device time per step from a Chrome/perfetto trace (jax.profiler's perfetto_trace.json):
    the complete events of every process named `/device:GPU:*`, summed by kernel kind and by
    kernel name (the `top` largest), in ms per step. Overlapping streams add up, so the
    kinds' total can exceed the step's wall time."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    devices = {e["pid"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"
               and str(e.get("args", {}).get("name", "")).startswith("/device:GPU")}  # fmt: skip
    threads = {
        (e["pid"], e.get("tid")): str(e.get("args", {}).get("name", ""))
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name" and e["pid"] in devices
    }
    # The kernels are on the "Stream #N" lines; the device's other lines (XLA Modules, XLA
    # Ops, Steps) repeat the same time, so they are left out where stream lines exist.
    streams = {key for key, name in threads.items() if name.startswith("Stream")}
    by_kind, by_name, count = {}, {}, {}
    for e in events:
        if e.get("ph") != "X" or e.get("pid") not in devices:
            continue
        if streams and (e["pid"], e.get("tid")) not in streams:
            continue
        ms = float(e.get("dur", 0.0)) / 1e3 / steps
        name = e.get("name", "?")
        kind = kernel_kind(name)
        by_kind[kind] = by_kind.get(kind, 0.0) + ms
        key = (kind, name[:120], str(e.get("args", {}).get("hlo_op", ""))[:60])
        by_name[key] = by_name.get(key, 0.0) + ms
        count[key] = count.get(key, 0) + 1
    largest = sorted(by_name.items(), key=lambda kv: -kv[1])[:top]
    return {
        "device_ms_per_step": sum(by_kind.values()),
        "ms_per_step_by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
        "kernels_per_step": sum(count.values()) / steps,
        "device_lines": sorted(set(threads.values())),
        "largest": [
            {
                "kind": k,
                "name": n,
                "hlo_op": op,
                "ms_per_step": ms,
                "calls_per_step": count[(k, n, op)] / steps,
            }
            for (k, n, op), ms in largest
        ],  # fmt: skip
    }


def profiled_steps(compiled, state, batch, steps: int, keep_as: str | None) -> dict:
    """Runs `steps` train steps under jax.profiler and returns their kernel breakdown; the
    perfetto trace (open it at ui.perfetto.dev) is copied to `keep_as` when given."""
    import jax

    with tempfile.TemporaryDirectory() as log_dir:
        with jax.profiler.trace(log_dir, create_perfetto_trace=True):
            for _ in range(steps):
                state, metrics = compiled(state, batch)
            jax.block_until_ready(metrics)
        (path,) = glob.glob(os.path.join(log_dir, "**", "perfetto_trace.json.gz"), recursive=True)
        if keep_as:
            shutil.copyfile(path, keep_as)
        with gzip.open(path) as f:
            return kernel_breakdown(json.load(f), steps)


def synthetic_batch(config, n: int, seed: int = 0) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    size, length = config.model.image.image_size, config.model.text.max_len
    return {
        "image": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        "tokens": rng.integers(3, config.model.text.vocab_size, (n, length)).astype(np.int32),
    }


def train_step_figures(recipe, batch_size, overrides, prof, peak_tflops, *, donate=True,
                       host_feed=False, profile_to=None) -> dict:  # fmt: skip
    """Compiles and times one config's train step on one device (module docstring: clip)."""
    import jax
    import numpy as np

    from vljax import sharding as shd
    from vljax.config import build_config
    from vljax.models.flops import train_flops_per_image
    from vljax.train.aot import abstract_batch
    from vljax.train.state import build_parts, init_state
    from vljax.train.step import make_train_step

    settings = {**BASELINE, **prof["tiny"], **overrides, "batch_size": str(batch_size)}
    config = build_config(recipe, list(settings.items()))
    mesh = shd.make_mesh(config.mesh, jax.devices()[:1])
    parts = build_parts(config, mesh)
    step = make_train_step(parts, config, mesh, donate=donate)
    flops = train_flops_per_image(config.model.to_dict(), batch_size)
    row = {"batch": batch_size, "gflops_per_image": flops["total"] / 1e9}

    t = time.perf_counter()
    compiled = step.lower(parts.abstract, abstract_batch(parts.method, config, mesh)).compile()
    row["compile_s"] = time.perf_counter() - t
    need, (limit, _) = program_bytes(compiled), device_bytes_limit()
    row["program_gib"] = need / 2**30 if need is not None else None
    if need is not None and limit is not None and need > limit:
        row["fits"] = False
        return row
    row["fits"] = True

    state = init_state(parts, 0)
    host = synthetic_batch(config, batch_size)
    batch = shd.global_batch(host, mesh, config.sharding)
    for _ in range(prof["warmup"]):
        state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(prof["steps"]):
        t = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    row["step_ms"] = step_s * 1e3
    row["images_per_s"] = batch_size / step_s
    achieved = flops["total"] * batch_size / step_s
    row["model_tflops"] = achieved / 1e12
    row["mfu_spec"] = (
        achieved / (SPEC_TFLOPS * 1e12) if jax.devices()[0].platform == "gpu" else None
    )
    row["mfu_measured"] = achieved / (peak_tflops * 1e12) if peak_tflops else None
    row["loss"] = float(np.asarray(metrics["loss"]))
    if host_feed:  # the trainer's loop: a fresh host batch each step, metrics read a step late
        pending, t = None, time.perf_counter()
        for _ in range(prof["steps"]):
            state, metrics = compiled(state, shd.global_batch(host, mesh, config.sharding))
            if pending is not None:
                np.asarray(pending["nonfinite_in_a_row"])
            pending = metrics
        jax.block_until_ready(pending)
        loop_s = (time.perf_counter() - t) / prof["steps"]
        row["trainer_feed_step_ms"] = loop_s * 1e3
        row["trainer_feed_images_per_s"] = batch_size / loop_s
    row["peak_gib_in_use"] = (device_bytes_limit()[1] or 0) / 2**30
    if profile_to is not None:  # "" profiles without keeping the trace
        row["profile"] = profiled_steps(compiled, state, batch, 3, profile_to or None)
    del state, batch, compiled
    return row


def open_clip_worker(model_name: str, batch_size: int, steps: int, warmup: int) -> dict:
    """open_clip's ViT-B-16 trained as its own train.py does with `--precision amp_bf16
    --torchcompile`: fp32 weights, bf16 autocast, the model torch.compile'd, fused AdamW,
    ClipLoss. Random images and tokens already on the GPU. Runs in its own process."""
    import open_clip
    import torch

    device = "cuda"
    model = open_clip.create_model(model_name, pretrained=None, device=device)
    model.train()
    compiled = torch.compile(model)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.2, fused=True)
    loss_fn = open_clip.ClipLoss()
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple | list) else size
    images = torch.randn(batch_size, 3, size, size, device=device)
    texts = torch.randint(3, model.vocab_size, (batch_size, model.context_length), device=device)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = compiled(images, texts)
            if isinstance(out, dict):
                out = out["image_features"], out["text_features"], out["logit_scale"]
            loss = loss_fn(*out[:3])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    t = time.perf_counter()
    for _ in range(warmup + 1):  # the first call compiles
        step()
    torch.cuda.synchronize()
    compile_s = time.perf_counter() - t
    times = []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        loss = step()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    step_s = statistics.median(times)
    return {
        "batch": batch_size,
        "compile_s": compile_s,
        "step_ms": step_s * 1e3,
        "images_per_s": batch_size / step_s,
        "loss": float(loss),
        "peak_gib_allocated": torch.cuda.max_memory_allocated() / 2**30,
        "versions": f"torch {torch.__version__}, open_clip {open_clip.__version__}",
    }


def in_subprocess(args: list[str], timeout: float, env: dict | None = None) -> dict:
    """Runs this script with `args` plus `--out FILE` in a fresh process; its JSON result."""
    out = os.path.join(
        os.environ.get("TMPDIR", "/tmp"), f"vljax_gpu_{os.getpid()}_{time.time_ns()}.json"
    )
    cmd = [sys.executable, os.path.abspath(__file__), *args, "--out", out]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=max(timeout, 1),
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0 or not os.path.exists(out):
        tail = (proc.stdout + proc.stderr)[-1500:]
        raise RuntimeError(f"exit {proc.returncode}: {tail}")
    with open(out) as f:
        return json.load(f)


def ring_figures(batch_sizes, budget: Budget) -> list[dict]:
    """The softmax loss alone on one device, value and gradients with respect to both [B, 512]
    float32 embedding sets: ring (P = 1, column tiles) against all_gather (dense B x B)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh

    from vljax.losses import contrastive_loss

    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    limit, _ = device_bytes_limit()
    rows = []
    for n in batch_sizes:
        keys = jax.random.split(jax.random.key(n), 2)
        zimg, ztxt = (jax.random.normal(k, (n, 512), jnp.float32) for k in keys)
        zimg, ztxt = (z / jnp.linalg.norm(z, axis=1, keepdims=True) for z in (zimg, ztxt))
        for impl in ("ring", "all_gather"):
            if budget.left() < 0:
                rows.append({"batch": n, "impl": impl, "skipped": "budget"})
                continue
            dense = 16 * n * n  # all_gather: float32 B x B logits, probabilities and gradients
            if impl == "all_gather" and limit is not None and dense > limit:
                # Not compiled: autotuning such a program can itself run out of memory and
                # kill the process (seen at 64k), losing the rows measured before it.
                error = f"not run: its B x B float32 matrices need {dense / 2**30:.0f} GiB"
                rows.append({"batch": n, "impl": impl, "fits": False, "error": error})
                continue
            loss = lambda a, b, impl=impl: contrastive_loss(
                a, b, scale=jnp.float32(10.0), kind="softmax", impl=impl, mesh=mesh
            )
            f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
            try:  # autotuning at compile time allocates too, and may run out
                compiled = f.lower(zimg, ztxt).compile()
            except jax.errors.JaxRuntimeError as e:
                error = str(e).splitlines()[0][:300]
                rows.append({"batch": n, "impl": impl, "fits": False, "error": error})
                continue
            memory = compiled.memory_analysis()
            row = {"batch": n, "impl": impl, "program_gib": program_bytes(compiled) / 2**30}
            row["temp_gib"] = memory.temp_size_in_bytes / 2**30 if memory else None
            if limit is not None and program_bytes(compiled) > limit:
                rows.append({**row, "fits": False})
                continue
            try:
                jax.block_until_ready(compiled(zimg, ztxt))
                times = []
                for _ in range(3):
                    t = time.perf_counter()
                    jax.block_until_ready(compiled(zimg, ztxt))
                    times.append(time.perf_counter() - t)
            except jax.errors.JaxRuntimeError as e:  # out of memory at run time
                rows.append({**row, "fits": False, "error": str(e).splitlines()[0][:300]})
                continue
            rows.append({**row, "fits": True, "ms": statistics.median(times) * 1e3})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def loader_figures(workers, images: int, timeout: float) -> dict:
    """benchmarks/loader.py on this machine's cores: JPEG ArrayRecords at 224 px."""
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "loader.py"), "--images",
           str(images), "--batches", "8", "--workers", *map(str, workers)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout, 1))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("224px JPEG")]
    if proc.returncode != 0 and not lines:
        raise RuntimeError(f"exit {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
    rates = {}
    for ln in lines:  # "224px JPEG  workers=4:     1234 images/s  per CPU-s: ..."
        w = int(ln.split("workers=")[1].split(":")[0])
        rates[w] = float(ln.split(":")[1].split("images/s")[0])
    return {"cores": os.cpu_count(), "images_per_s_by_workers": rates}


def run_sections(args, prof, results: dict, save) -> None:
    import jax

    budget = Budget(args.budget_s)
    results["machine"] = machine_name()
    results["versions"] = f"jax {jax.__version__}, python {platform.python_version()}"
    results["batch"] = prof["batch"]

    def section(name, fn):
        if name not in args.sections:
            return
        if budget.left() <= 0:
            results[name] = {"skipped": "budget"}
        else:
            t = time.perf_counter()
            try:
                results[name] = fn()
            except Exception as e:  # recorded; the next section still runs
                results[name] = {"error": f"{type(e).__name__}: {e}"[:2000]}
                traceback.print_exc()
            print(f"[{name}] {time.perf_counter() - t:.0f} s: {json.dumps(results[name])[:600]}",
                  flush=True)  # fmt: skip
        save()

    def step(recipe, batch, over, donate=True, host_feed=False, env=None, profile_to=None):
        """One config in its own process: its memory is its own (a program that failed or
        left the allocator fragmented does not shrink the next one's) and peak bytes are its."""
        spec = dict(recipe=recipe, batch=batch, over=over, donate=donate, host_feed=host_feed,
                    peak=(results.get("peak") or {}).get("tflops"),
                    profile_to=profile_to)  # fmt: skip
        return in_worker("step", spec, budget.left() + 90, env)

    def in_worker(name, spec, timeout, env=None):
        cpu = ["--cpu"] if args.cpu else []
        return in_subprocess(["--worker", name, "--spec", json.dumps(spec), *cpu], timeout, env)

    # The order is the order of what matters most when the budget runs out: the baseline and
    # its kernel profile, the flags, open_clip in the same call, then the levers.
    trace = os.path.join(os.path.dirname(os.path.abspath(args.out)), "gpu_trace.json.gz") if (
        args.out and not args.cpu) else ""  # fmt: skip
    section("peak", lambda: matmul_peak(prof["matmul"], prof["ramp_s"]))
    section("clip", lambda: step("clip", prof["batch"], {}, host_feed=True, profile_to=trace))

    def flags():
        rows = {}
        for name in args.flag_sets:
            flags = FLAG_SETS[name]
            if budget.left() <= 0:
                rows[name] = {"XLA_FLAGS": flags, "skipped": "budget"}
                continue
            env = {"XLA_FLAGS": flags}
            try:
                peak = in_worker("peak", {}, budget.left() + 60, env)
                row = step("clip", prof["batch"], {}, env=env)
                rows[name] = {"XLA_FLAGS": flags, "peak_tflops": peak["tflops"], **row}
            except Exception as e:
                rows[name] = {"XLA_FLAGS": flags, "error": f"{type(e).__name__}: {e}"[:1000]}
            print(f"  flags {name}: {json.dumps(rows[name])[:300]}", flush=True)
        return rows

    section("flags", flags)
    oc_args = ["--open-clip-worker", prof["oc_model"] or "", "--batch", str(prof["batch"])]
    # open_clip's torch.compile takes about a minute: it gets 3 minutes even when the budget
    # is nearly spent (a share of what was left, 77 s, once cut it off).
    section("open_clip", lambda: in_subprocess(oc_args, max(180, min(240, budget.left()))))

    def levers():
        rows = {}
        for name, over in LEVERS.items():
            if budget.left() <= 0:
                rows[name] = {"skipped": "budget"}
                continue
            try:
                rows[name] = step("clip", prof["batch"], over, donate=name != "no donation")
            except Exception as e:
                rows[name] = {"error": f"{type(e).__name__}: {e}"[:1000]}
            print(f"  lever {name}: {json.dumps(rows[name])[:300]}", flush=True)
        return rows

    section("levers", levers)
    section("siglip", lambda: step("siglip", prof["batch"], {}))
    ring_spec = dict(batches=prof["ring"], budget_s=budget.left() - 60)
    section("ring", lambda: in_worker("ring", ring_spec, budget.left())["rows"])
    section(
        "loader",
        lambda: loader_figures(prof["loader_workers"], prof["loader_images"], budget.left()),
    )

    def sweep():
        rows = {}
        for n in prof["sweep"]:
            if budget.left() <= 0:
                rows[n] = {"skipped": "budget"}
                continue
            try:
                rows[n] = step("clip", n, {})
            except Exception as e:
                rows[n] = {"error": f"{type(e).__name__}: {e}"[:1000]}
            print(f"  batch {n}: {json.dumps(rows[n])[:300]}", flush=True)
        return rows

    section("sweep", sweep)


def fmt(value, digits=4):
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return "" if value is None else str(value)


def render(results: dict) -> str:
    """The docs/benchmarks.md section of a results file."""
    lines = [
        f"Measured on {results.get('machine')} ({results.get('versions')}) with "
        f"`python benchmarks/gpu.py` on the GPU machine. Synthetic batches already "
        f"on the device; bf16 compute, float32 params and AdamW state. Model FLOPs per image "
        f"are counted from the architecture (vljax/models/flops.py; a rematerialised forward "
        f"is not counted); MFU = model FLOP/s over {SPEC_TFLOPS:.0f} TFLOP/s (dense bf16, "
        f"datasheet) and over the measured matmul peak.",
        "",
    ]
    peak = results.get("peak") or {}
    if "tflops" in peak:
        lines += [f"Measured peak: {peak['n']}^3 bf16 matmul at {peak['tflops']:.0f} TFLOP/s.", ""]
    cols = ("batch", "step_ms", "images_per_s", "gflops_per_image", "model_tflops", "mfu_spec",
            "mfu_measured", "program_gib", "compile_s")  # fmt: skip
    table = ["| run | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]

    def add(name, row):
        if not isinstance(row, dict):
            return
        if "error" in row or "skipped" in row or row.get("fits") is False:
            why = row.get("error") or "does not fit in device memory"
            if row.get("skipped") == "budget":
                why = "not measured: the call's time budget ran out first"
            table.append(f"| {name} | {why.splitlines()[0][:160]} |" + " |" * (len(cols) - 1))
            return
        table.append(f"| {name} | " + " | ".join(fmt(row.get(c)) for c in cols) + " |")

    add("CLIP B/16 (cudnn attention, no remat, unrolled)", results.get("clip"))
    add("SigLIP B/16 (same settings)", results.get("siglip"))
    for name, row in (results.get("levers") or {}).items():
        add(f"CLIP B/16, {name}", row)
    for n, row in (results.get("sweep") or {}).items():
        add(f"CLIP B/16, batch {n}", row)
    flag_rows = results.get("flags") or {}
    if "XLA_FLAGS" in flag_rows or "skipped" in flag_rows:  # one flag set (older results)
        flag_rows = {"latency-hiding scheduler": flag_rows}
    for name, row in flag_rows.items():
        add(f"CLIP B/16, XLA flags: {name}", row)
    lines += table + [""]
    for key in ("calls_note", "peak_note", "sweep_note", "open_clip_note"):
        lines += [f"Note: {results[key]}.", ""] if key in results else []
    oc, clip = results.get("open_clip") or {}, results.get("clip") or {}
    if "images_per_s" in oc:
        lines.append(
            f"open_clip ViT-B-16 ({oc.get('versions')}; bf16 autocast, torch.compile, fused "
            f"AdamW), batch {oc['batch']}: {oc['step_ms']:.1f} ms/step, "
            f"{oc['images_per_s']:.0f} images/s, {oc['peak_gib_allocated']:.1f} GiB peak."
        )
        if "images_per_s" in clip:
            where = "see the note below" if "open_clip_note" in results else "same call"
            lines.append(
                f"vljax CLIP B/16 / open_clip images/s: "
                f"**{clip['images_per_s'] / oc['images_per_s']:.2f}x** (same GPU kind, {where})."
            )
    elif oc:
        lines.append(f"open_clip: {(oc.get('error') or oc.get('skipped'))[:300]}")
    if "trainer_feed_images_per_s" in clip:
        lines.append(
            f"Fed as the trainer feeds it (a host batch put on the device before each step, "
            f"metrics read a step late): {clip['trainer_feed_images_per_s']:.0f} images/s "
            f"against {clip['images_per_s']:.0f} with the batch resident."
        )
    breakdown = clip.get("profile")
    if breakdown and breakdown["ms_per_step_by_kind"]:  # none on CPU
        step_ms = clip.get("step_ms") or 0.0
        lines += ["", f"Where the baseline's step goes (jax.profiler, 3 steps; device ms per step, "
                  f"streams added; step {step_ms:.1f} ms):", "", "| kernel kind | ms per step "
                  "| share of the step |", "|---|---|---|"]  # fmt: skip
        for kind, ms in breakdown["ms_per_step_by_kind"].items():
            lines.append(f"| {kind} | {ms:.1f} | {ms / step_ms:.0%} |" if step_ms else "")
        lines += ["", "| largest kernels | kind | HLO op | ms per step | calls per step |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for k in breakdown["largest"][:12]:
            lines.append(f"| `{k['name'][:70]}` | {k['kind'].split(' ')[0]} | {k['hlo_op']} | "
                         f"{k['ms_per_step']:.2f} | {k['calls_per_step']:g} |")  # fmt: skip
    ring = results.get("ring")
    if isinstance(ring, list):
        lines += ["", "Softmax loss alone, value and gradients, [B, 512] float32 embeddings, "
                  "one device:", "", "| B | impl | ms | program GiB | temporaries GiB |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for r in ring:
            ms = fmt(r.get("ms")) if r.get("fits", True) else r.get("error", "does not fit")
            sizes = f"{fmt(r.get('program_gib'), 3)} | {fmt(r.get('temp_gib'), 3)}"
            lines.append(f"| {r['batch']} | {r['impl']} | {r.get('skipped') or ms} | {sizes} |")
        lines += ["", f"Note: {results['ring_note']}."] if "ring_note" in results else []
    loader = results.get("loader") or {}
    if "images_per_s_by_workers" in loader and "images_per_s" in clip:
        need = 8 * clip["images_per_s"]
        rates = ", ".join(f"{w} workers {r:.0f}" for w, r in
                          loader["images_per_s_by_workers"].items())  # fmt: skip
        lines += ["", f"Input: feeding 8 such GPUs from one host needs {need:.0f} images/s; "
                  f"benchmarks/loader.py (224 px from JPEG ArrayRecords) on the GPU machine's "
                  f"{loader['cores']} cores gives images/s: {rates}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu", action="store_true", help="tiny shapes on CPU")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--ring", default=None, help="ring section batch sizes, e.g. 131072,262144")
    p.add_argument("--sweep", default=None, help="sweep section batch sizes, e.g. 768,1024")
    p.add_argument("--flag-sets", default=None, help="flags section: names from FLAG_SETS, "
                   "separated by ';' (default: all)")  # fmt: skip
    p.add_argument("--budget-s", type=float, default=480.0)
    p.add_argument("--out", default=None, help="results JSON (rewritten after each section)")
    p.add_argument("--render", default=None, help="print the docs table of a results JSON")
    p.add_argument("--write", action="store_true", help="with --render: into docs/benchmarks.md")
    p.add_argument("--open-clip-worker", default=None, help=argparse.SUPPRESS)
    workers = ("step", "peak", "ring")
    p.add_argument("--worker", choices=workers, default=None, help=argparse.SUPPRESS)
    p.add_argument("--spec", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.sections = args.sections.split(",")
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown sections {unknown}; expected a comma-separated subset of {SECTIONS}")

    args.flag_sets = args.flag_sets.split(";") if args.flag_sets else list(FLAG_SETS)
    unknown = sorted(set(args.flag_sets) - set(FLAG_SETS))
    if unknown:
        p.error(f"unknown flag sets {unknown}; expected names from {list(FLAG_SETS)}")

    if args.render:
        with open(args.render) as f:
            text = render(json.load(f))
        print(text)
        if args.write:
            replace_section("GPU: CLIP training on one device", text)
        return

    prof = profile(args.cpu)
    if args.batch:
        prof["batch"] = args.batch
    if args.ring:
        prof["ring"] = tuple(int(n) for n in args.ring.split(","))
    if args.sweep:
        prof["sweep"] = tuple(int(n) for n in args.sweep.split(","))
    if args.open_clip_worker is not None:
        if not args.open_clip_worker:
            raise SystemExit("open_clip runs on a CUDA GPU only (not with --cpu)")
        row = open_clip_worker(args.open_clip_worker, prof["batch"], prof["steps"], prof["warmup"])
        with open(args.out, "w") as f:
            json.dump(row, f)
        return
    if args.cpu:
        os.environ["JAX_PLATFORMS"] = "cpu"
    else:  # torch shares the GPU in a subprocess; JAX takes memory as it needs it
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        # The workers share XLA's autotuning results through jax's cache (its per-fusion
        # autotune cache lives there), so a lever's compile skips the GEMMs already tuned.
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "/tmp/vljax_gpu_jax_cache")
    if args.worker:
        spec = json.loads(args.spec)
        if args.worker == "step":
            row = train_step_figures(
                RECIPES[spec["recipe"]], spec["batch"], spec["over"], prof, spec["peak"],
                donate=spec["donate"], host_feed=spec["host_feed"],
                profile_to=spec["profile_to"],
            )  # fmt: skip
        elif args.worker == "peak":
            row = matmul_peak(prof["matmul"], prof["ramp_s"])
        else:
            row = {"rows": ring_figures(spec["batches"], Budget(spec["budget_s"]))}
        with open(args.out, "w") as f:
            json.dump(row, f)
        return
    results = {}

    def save():
        if args.out:
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)

    run_sections(args, prof, results, save)
    print(render(results))


if __name__ == "__main__":
    main()
