"""benchmarks/gpu.py runs end to end on CPU at tiny shapes (`--cpu`), so it cannot rot
between the GPU calls that fill docs/benchmarks.md; its table renders from the results."""

import json

from benchmarks import gpu


def test_gpu_benchmark_runs_on_cpu(tmp_path):
    out = tmp_path / "results.json"
    gpu.main(["--cpu", "--sections", "peak,clip,open_clip,ring", "--out", str(out)])
    results = json.loads(out.read_text())
    clip = results["clip"]
    assert clip["fits"] and clip["step_ms"] > 0 and clip["trainer_feed_step_ms"] > 0
    # The model FLOPs of the tiny CLIP, counted by hand: 16 patches of 8x8x3 at width 64,
    # 17 tokens through one block of MLP 128, projection to 64; 8 text tokens likewise.
    image = 2 * (2 * 16 * 192 * 64) + 3 * (
        8 * 17 * 64**2 + 4 * 17**2 * 64 + 4 * 17 * 64 * 128 + 2 * 64 * 64
    )
    text = 3 * (8 * 8 * 64**2 + 4 * 8**2 * 64 + 4 * 8 * 64 * 128 + 2 * 64 * 64)
    loss = 3 * 2 * 8 * 64
    assert abs(clip["gflops_per_image"] * 1e9 - (image + text + loss)) < 1
    assert "error" in results["open_clip"]  # a CUDA GPU only: recorded, the run goes on
    ring = {(r["batch"], r["impl"]): r for r in results["ring"]}
    assert set(ring) == {(256, "ring"), (256, "all_gather"), (1024, "ring"), (1024, "all_gather")}
    assert ring[(1024, "ring")]["temp_gib"] < ring[(1024, "all_gather")]["temp_gib"]
    text = gpu.render(results)
    assert "| CLIP B/16 (cudnn attention, no remat, unrolled) | 8 |" in text
    assert "| 1024 | ring |" in text
