"""Every method's `:demo` figures in one table: "Demo figures" in docs/methods.md and in
docs/benchmarks.md.

    python benchmarks/methods.py [--only flip lit ...] [--root /tmp/vljax-methods] [--write]

Trains each method's `configs/<name>.py:demo` in a fresh workdir under ROOT, then records
steps, wall time, the final loss and the eval figures with the machine named. LiT and
Long-CLIP start from `runs/demo`: run
`vljax train --config configs/demo.py --workdir runs/demo` first.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.report import DOC as BENCHMARKS_DOC  # noqa: E402
from benchmarks.report import upsert_row  # noqa: E402
from benchmarks.train_step import machine_name  # noqa: E402

# method -> its demo recipe
DEMOS = {
    "clip": "configs/demo.py",
    "clip_quickstart": "configs/demo.py:quickstart",  # the base of negnce's and tpm_cl's demos
    "flip": "configs/flip.py:demo",
    "lit": "configs/lit.py:demo",
    "filip": "configs/filip.py:demo",
    "coca": "configs/coca.py:demo",
    "sycoca": "configs/sycoca.py:demo",
    "long_clip": "configs/long_clip.py:demo",
    "negnce": "configs/negnce.py:demo",
    "symile": "configs/symile.py:demo",
    "symile_pairwise": "configs/symile.py:demo_pairwise",
    "symile_missing": "configs/symile.py:demo_missing",
    "tpm_cl": "configs/tpm_cl.py:demo",
    "m2_encoder": "configs/m2_encoder.py:demo",
    "m2_encoder_grouped": "configs/m2_encoder.py:demo_grouped",
    "one_to_k": "configs/one_to_k.py:demo",
    "one_to_k_one_language": "configs/one_to_k.py:demo_one_language",
    "multi_positive": "configs/multi_positive.py:demo",
    "multi_positive_one_sentence": "configs/multi_positive.py:demo_one_sentence",
    "video_clip": "configs/video_clip.py:demo",
    "video_clip_temporal": "configs/video_clip.py:demo_temporal",
    "video_clip_early": "configs/video_clip.py:demo_early",
    "video_clip_early_128": "configs/video_clip.py:demo_early_128",
    "snp_s3": "configs/snp_s3.py:demo",
    "xpool": "configs/xpool.py:demo",
    "frozen_in_time": "configs/frozen_in_time.py:demo",
    "video_negnce": "configs/video_clip.py:demo_negnce",
    "video_tpm_cl": "configs/video_clip.py:demo_tpm_cl",
}
# Demos that need several devices to show what they do, run on that many CPU devices (XLA's
# host platform split): M2-Encoder's grouped aggregation with one device per group.
CPU_DEVICES = {"m2_encoder_grouped": 4}
DOC = os.path.join(ROOT, "docs", "methods.md")


def run_demo(name, spec, root):
    workdir = os.path.join(root, name)
    shutil.rmtree(workdir, ignore_errors=True)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "vljax.cli", "train", "--config", spec, "--workdir", workdir]
    env = dict(os.environ)
    if name in CPU_DEVICES:
        flag = f"--xla_force_host_platform_device_count={CPU_DEVICES[name]}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    subprocess.run(cmd, cwd=ROOT, check=True, env=env)
    wall = time.perf_counter() - start
    with open(os.path.join(workdir, "eval.json")) as f:
        evals = json.load(f)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        last = [json.loads(line) for line in f][-1]
    row = {"method": name, "config": spec, "machine": machine_name(), "steps": evals["step"]}
    if name in CPU_DEVICES:
        row["cpu_devices"] = CPU_DEVICES[name]
    row.update({"wall_s": wall, "final_loss": last["loss"]})
    row.update({k: v for k, v in evals.items() if k != "step"})
    return row


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=list(DEMOS))
    parser.add_argument("--root", default="/tmp/vljax-methods")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    for name in args.only:
        row = run_demo(name, DEMOS[name], args.root)
        print(json.dumps(row))
        if args.write:
            note = "`python benchmarks/methods.py --write`: each method's `:demo`, fresh workdir."
            for doc in (DOC, BENCHMARKS_DOC):  # the methods' page and the benchmarks page
                upsert_row("Demo figures", row, key=("method", "machine"), note=note, doc=doc)


if __name__ == "__main__":
    main()
