"""FLIP on the method seam: the `:tiny` recipe trains 60 steps with a falling loss, and a
stochastic method (a fresh patch mask every step) resumes bit for bit."""

import json
import signal

import numpy as np
import pytest

from vljax import cli
from vljax.errors import EXIT_INTERRUPTED
from vljax.train import loop

ARGV = ["train", "--config", "configs/flip.py:tiny"]


def losses(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


@pytest.fixture(scope="module")
def flip_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("flip")
    assert cli.main([*ARGV, "--workdir", str(workdir)]) == 0
    return workdir


def test_tiny_trains_60_steps_with_a_finite_falling_loss(flip_run):
    got = losses(flip_run)
    assert sorted(got) == list(range(10, 61, 10))
    assert all(np.isfinite(v) for v in got.values())
    assert got[60] < got[10]


def test_resume_of_a_masked_run_is_bit_exact(flip_run, tmp_path, monkeypatch):
    real = loop.make_train_iterator

    class Interrupting:
        def __init__(self, inner):
            self.inner, self.n = inner, 0

        def __next__(self):
            self.n += 1
            if self.n == 25:
                signal.raise_signal(signal.SIGINT)
            return next(self.inner)

        def get_state(self):
            return self.inner.get_state()

        def set_state(self, state):
            self.inner.set_state(state)

    monkeypatch.setattr(loop, "make_train_iterator", lambda *a, **k: Interrupting(real(*a, **k)))
    argv = [*ARGV, "--workdir", str(tmp_path)]
    assert cli.main(argv) == EXIT_INTERRUPTED
    monkeypatch.setattr(loop, "make_train_iterator", real)
    assert cli.main(argv) == 0
    assert losses(tmp_path) == losses(flip_run)
