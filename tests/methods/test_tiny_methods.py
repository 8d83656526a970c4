"""Methods' smoke runs: each `:tiny` recipe trains 60 steps with a falling loss; FLIP, a
stochastic method (a fresh patch mask every step), resumes bit for bit."""

import json

import numpy as np
import pytest

from tests.train.tiny import interrupt_at
from vljax import cli
from vljax.errors import EXIT_INTERRUPTED

ARGV = ["train", "--config", "configs/flip.py:tiny"]


def losses(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


@pytest.fixture(scope="module")
def flip_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("flip")
    assert cli.main([*ARGV, "--workdir", str(workdir)]) == 0
    return workdir


def assert_trained_60_steps(workdir):
    got = losses(workdir)
    assert sorted(got) == list(range(10, 61, 10))
    assert all(np.isfinite(v) for v in got.values())
    assert got[60] < got[10]


def test_tiny_trains_60_steps_with_a_finite_falling_loss(flip_run):
    assert_trained_60_steps(flip_run)


@pytest.mark.parametrize("recipe", ["lit", "filip", "long_clip", "sycoca"])
def test_tiny_recipe_trains_60_steps_with_a_finite_falling_loss(recipe, tmp_path):
    """LiT: a random locked image tower, the text tower learning to match it. FILIP: the
    late-interaction loss. Long-CLIP: long and short captions (shapes_long), 36 positions.
    SyCoCa: CoCa's two terms and the masked-image term. (CoCa's own run: test_coca_method.py.)"""
    argv = ["train", "--config", f"configs/{recipe}.py:tiny", "--workdir", str(tmp_path)]
    assert cli.main(argv) == 0
    assert_trained_60_steps(tmp_path)


def test_resume_of_a_masked_run_is_bit_exact(flip_run, tmp_path, monkeypatch):
    interrupt_at(monkeypatch, 25)
    argv = [*ARGV, "--workdir", str(tmp_path)]
    assert cli.main(argv) == EXIT_INTERRUPTED
    monkeypatch.undo()
    assert cli.main(argv) == 0
    assert losses(tmp_path) == losses(flip_run)
