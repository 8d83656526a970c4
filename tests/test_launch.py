"""Launchers: --dry-run prints the commands with the VLJAX_* environment."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_ARGS = ["--config", "configs/demo.py", "--workdir", "runs/x", "--config.total_steps=5"]


def run(cmd):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()


def test_multiprocess_dry_run():
    lines = run(
        [sys.executable, "launch/multiprocess.py", "-n", "3", "--port", "4321", "--cpu-devices",
         "2", "--dry-run", "--", *TRAIN_ARGS]
    )  # fmt: skip
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert "VLJAX_COORDINATOR=127.0.0.1:4321 VLJAX_NUM_PROCESSES=3" in line
        assert f"VLJAX_PROCESS_ID={i} " in line
        assert "--xla_force_host_platform_device_count=2" in line
        assert line.endswith("-m vljax.cli train " + " ".join(TRAIN_ARGS))


def test_shell_launchers_dry_run():
    env_free = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    out = subprocess.run(
        ["bash", "launch/slurm_gpu.sh", "--dry-run", *TRAIN_ARGS],
        cwd=ROOT, env=env_free, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.startswith("srun ") and "VLJAX_PROCESS_ID=$SLURM_PROCID" in out
    assert "train --config configs/demo.py --workdir runs/x" in out
    (line,) = run(["bash", "launch/tpu_pod.sh", "--dry-run", "tpu1", "zone1", *TRAIN_ARGS])
    assert line.startswith("gcloud compute tpus tpu-vm ssh tpu1 --zone zone1 --worker=all")
    assert "agent-worker-number" in line and "--config.total_steps=5" in line
