"""Runs shared by the trainer tests: trained once per session. Tests that change a run copy it
first (`copy_run`)."""

import shutil

import pytest

from tests.train.tiny import tiny_argv
from vljax import cli


@pytest.fixture(scope="session")
def full_run(tmp_path_factory):
    """12 tiny steps with the shapes evals, checkpoints at 3, 6, 9, 12 (the last 3 kept)."""
    workdir = tmp_path_factory.mktemp("full")
    assert cli.main(tiny_argv(workdir, with_evals=True, total_steps=12)) == 0
    return workdir


@pytest.fixture
def copy_run(full_run, tmp_path):
    """A private copy of full_run, for tests that damage or extend it."""
    target = tmp_path / "run"
    shutil.copytree(full_run, target)
    return target
