"""A real multi-host run on this machine: 2 processes x 4 fake CPU devices joined by
jax.distributed (gloo collectives, launch/multiprocess.py) on a hybrid mesh train the tiny
run of `full_run` (1 process x 8 devices) with its losses, evaluate once, and their
checkpoint resumes in 1 process. 38 to 54 s on 2 cores (docs/scaling.md)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np

from tests.train.tiny import tiny_argv
from vljax import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def losses(workdir) -> dict:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}


def test_two_processes_train_like_one_and_resume_on_one(full_run, tmp_path):
    two = tmp_path / "two"
    two.mkdir()
    # The run's own tokenizer, as full_run trained it from the same captions (saves its time).
    shutil.copy(full_run / "tokenizer.model", two)
    # A hybrid mesh (data split over the 2 processes, then inside each) with checkpoints at 6
    # and 12 only (full_run: a flat mesh, every 3 steps); the losses depend on neither.
    argv = tiny_argv(
        two, with_evals=True, total_steps=12, checkpoint_every_steps=6, mesh__dcn_data=2
    )[1:]
    launch = [sys.executable, "launch/multiprocess.py", "-n", "2", "--cpu-devices", "4"]
    # The launcher keeps the tests' XLA flags (conftest.py) and sets 4 devices per process.
    out = subprocess.run(
        [*launch, "--", *argv], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]

    # The same examples in every global batch: the losses of 1 process x 8 devices.
    one_losses, two_losses = losses(full_run), losses(two)
    assert sorted(two_losses) == list(range(1, 13))
    np.testing.assert_allclose(
        [two_losses[s] for s in range(1, 13)], [one_losses[s] for s in range(1, 13)], rtol=1e-4
    )
    # Logs and evals once, from process 0; the final eval computed across both processes.
    assert out.stdout.count("Model:") == 1 and out.stdout.count("Eval at step 12:") == 1
    with open(two / "eval_history.jsonl") as f:
        assert len(f.readlines()) == 1
    with open(two / "eval.json") as f, open(full_run / "eval.json") as g:
        two_eval, one_eval = json.load(f), json.load(g)
    assert two_eval["step"] == 12 and set(two_eval) == set(one_eval)
    for key in one_eval:
        assert abs(two_eval[key] - one_eval[key]) <= 1 / 128 + 1e-6, key  # one example at most

    # Elastic restore: the 2 processes' checkpoint at step 6 resumes in this process (8
    # devices, a flat mesh) at the same data position; the next steps equal the 2-process run's.
    resumed = tmp_path / "resumed"
    shutil.copytree(two, resumed)
    shutil.rmtree(resumed / "checkpoints" / "12")
    assert cli.main(tiny_argv(resumed, total_steps=12, checkpoint_every_steps=6)) == 0
    after = losses(resumed)
    assert sorted(after) == list(range(1, 13))
    np.testing.assert_allclose(
        [after[s] for s in range(7, 13)], [two_losses[s] for s in range(7, 13)], rtol=1e-5
    )
