"""benchmarks/gpu.py runs end to end on CPU at tiny shapes (`--cpu`), so it cannot rot
between the GPU calls that fill docs/benchmarks.md; its table renders from the results."""

import json

import pytest

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


def test_kernel_breakdown_counts_stream_kernels_once():
    """A hand-made trace: two steps on one GPU stream, the same time repeated on the device's
    'XLA Ops' line, and host events; each kernel is counted once, by its kind."""
    meta = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/host:CPU"}},
        {"ph": "M", "pid": 1, "tid": 7, "name": "thread_name", "args": {"name": "Stream #14"}},
        {"ph": "M", "pid": 1, "tid": 8, "name": "thread_name", "args": {"name": "XLA Ops"}},
    ]
    kernels = {  # name: (microseconds per step, expected kind)
        "nvjet_sm90_tst_128x160_gemm": (4000, "matmul"),
        "cudnn_generated_fort_native_sdpa_sm90_flash_bprop": (1500, "attention"),
        "sm80_xmma_fprop_implicit_gemm_indexed_bf16": (300, "convolution"),
        "loop_convert_fusion_22": (200, "other (fusions: elementwise, norms, reductions)"),
    }
    events = list(meta)
    for _ in range(2):
        for name, (us, _) in kernels.items():
            events += [{"ph": "X", "pid": 1, "tid": tid, "name": name, "dur": us} for tid in (7, 8)]
    events.append({"ph": "X", "pid": 2, "tid": 3, "name": "gemm on the host", "dur": 10**6})
    got = gpu.kernel_breakdown({"traceEvents": events}, steps=2)
    want = {kind: us / 1e3 for us, kind in kernels.values()}
    assert got["ms_per_step_by_kind"] == pytest.approx(want)
    assert got["device_ms_per_step"] == pytest.approx(sum(want.values()))
    assert got["kernels_per_step"] == len(kernels)
    assert got["largest"][0]["name"] == "nvjet_sm90_tst_128x160_gemm"
