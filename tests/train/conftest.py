"""Runs shared by the trainer tests: trained once per test session, whichever pytest-xdist
worker asks first (the other waits for it and reads the same directory). Tests that change a
run copy it first (`copy_run`)."""

import os
import shutil

import pytest
from filelock import FileLock

from tests.train.tiny import tiny_argv
from vljax import cli


@pytest.fixture(scope="session")
def full_run(tmp_path_factory):
    """12 tiny steps with the shapes evals, checkpoints at 3, 6, 9, 12 (the last 3 kept).
    Read-only: the files using it run on both workers (pytest -n 2)."""
    # Under pytest-xdist each worker's basetemp is a folder of the session's; without it, the
    # basetemp's parent holds every session's folder, and a run trained by an older version of
    # the code would be read back.
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    workdir, trained = shared / "full_run", shared / "full_run.trained"
    with FileLock(str(shared / "full_run.lock")):
        if not trained.exists():
            shutil.rmtree(workdir, ignore_errors=True)
            assert cli.main(tiny_argv(workdir, with_evals=True, total_steps=12)) == 0
            trained.touch()
    return workdir


@pytest.fixture
def copy_run(full_run, tmp_path):
    """A private copy of full_run, for tests that damage or extend it."""
    target = tmp_path / "run"
    shutil.copytree(full_run, target)
    return target
