"""A stochastic method's smoke run (FLIP: a fresh patch mask every step, drawn from the
state's key folded with the step) trains SMOKE_STEPS steps (tests/methods/runs.py) with a
falling loss and resumes bit for bit.
Every method draws its randomness through the same `Method.rngs`, so this covers SyCoCa's
random masking too (its per-key masks: tests/models/test_sycoca.py)."""

import pytest

from tests.methods.runs import (
    assert_trained_smoke_steps,
    losses,
    no_report,
    smoke_argv,
    smoke_train,
)
from tests.train.tiny import interrupt_at
from vljax import cli
from vljax.errors import EXIT_INTERRUPTED

RECIPES = ["flip"]


@pytest.fixture(scope="module", params=RECIPES)
def stochastic_run(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(request.param)
    assert smoke_train(request.param, workdir) == 0
    return request.param, workdir


def test_stochastic_tiny_trains_with_a_finite_falling_loss(stochastic_run):
    assert_trained_smoke_steps(stochastic_run[1])


def test_resume_of_a_stochastic_run_is_bit_exact(stochastic_run, tmp_path, monkeypatch):
    name, reference = stochastic_run
    interrupt_at(monkeypatch, 8)  # stops after step 8 of SMOKE_STEPS, between log steps
    argv = smoke_argv(name, tmp_path)
    with no_report():
        assert cli.main(argv) == EXIT_INTERRUPTED
        monkeypatch.undo()
        assert cli.main(argv) == 0
    assert losses(tmp_path) == losses(reference)
