"""Video-text on this machine: the loader's clips/s and frames/s, and the train step's time,
for 8- and 16-frame clips of configs/video_clip.py:demo (moving_shapes, 48 px).

    .venv/bin/python benchmarks/video.py [--frames 8 16] [--batches 8] [--steps 5] [--write]

Loader: `make_train_iterator` on moving_shapes (procedural drawing, one augmentation draw per
clip), 0 workers, after the first batch. Step: the demo's jitted train step on one real batch
from that loader, median of `--steps` after a warm-up; FLOPs from the compiled step's cost
analysis (per device; one device here). `--write` puts the table in docs/benchmarks.md
("## Video: loader and train step").
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402

from benchmarks.loader import time_loader  # noqa: E402
from benchmarks.report import replace_section  # noqa: E402
from benchmarks.train_step import cpu_model  # noqa: E402
from vljax import sharding as shd  # noqa: E402
from vljax.config import build_config  # noqa: E402
from vljax.data.pipeline import make_train_iterator  # noqa: E402
from vljax.data.tokenizer import tokenizer_for_run  # noqa: E402
from vljax.train.aot import compiled_flops  # noqa: E402
from vljax.train.state import build_parts, init_state  # noqa: E402
from vljax.train.step import make_train_step  # noqa: E402


def figures(frames: int, batches: int, steps: int, workdir: str) -> dict:
    config = build_config(
        "configs/video_clip.py:demo", [("model.video.frames", str(frames)), ("evals", "{}")]
    )
    tokenizer = tokenizer_for_run(config, workdir)
    mesh = shd.make_mesh(config.mesh, jax.devices()[:1])
    parts = build_parts(config, mesh)
    fields = parts.method.batch_fields
    clips_per_s, _ = time_loader(config, tokenizer, batches, fields)

    step = make_train_step(parts, config, mesh)
    local = next(make_train_iterator(config, tokenizer, seed=0, fields=fields))
    batch = shd.global_batch(local, mesh, config.sharding)
    state = init_state(parts, 0)
    compiled = step.lower(state, batch).compile()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    return {
        "frames": frames,
        "batch": config.batch_size,
        "loader_clips_per_s": clips_per_s,
        "loader_frames_per_s": clips_per_s * frames,
        "step_ms": step_s * 1e3,
        "step_clips_per_s": config.batch_size / step_s,
        "gflops_per_step": compiled_flops(compiled) / 1e9,
    }


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, nargs="+", default=[8, 16])
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for frames in args.frames:
            rows.append(figures(frames, args.batches, args.steps, workdir))
            print(rows[-1], flush=True)
    machine = f"CPU {cpu_model()}, {os.cpu_count()} cores"
    load = os.getloadavg()[0]
    lines = [
        f"`.venv/bin/python benchmarks/video.py --write` on {machine} (1-minute load average "
        f"{load:.1f} at the end). configs/video_clip.py:demo (48 px clips, batch 32, the demo "
        "towers, mean pooling) at each clip length; loader with 0 workers.",
        "",
        "| frames | loader clips/s | loader frames/s | step ms | step clips/s | GFLOP/step |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['frames']} | {r['loader_clips_per_s']:.0f} | {r['loader_frames_per_s']:.0f} "
            f"| {r['step_ms']:.0f} | {r['step_clips_per_s']:.1f} | {r['gflops_per_step']:.2f} |"
            for r in rows
        ],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        replace_section("Video: loader and train step", text)


if __name__ == "__main__":
    main()
