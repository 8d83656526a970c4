"""What the methods' smoke runs check: the logged losses of a run directory.

The smoke runs train a `:tiny` recipe for SMOKE_STEPS steps rather than the recipe's 60
(`smoke_argv`): the step compiles the same program shapes either way, and 20 steps already
show a finite loss that falls (from well above its step-20 value at step 5).

`smoke_train` runs one without the report (report.md and its PNG plots: about 2 CPU s of
matplotlib a run, and no smoke test reads them; tests/train/test_report.py and
tests/train/test_loop.py test the report)."""

import contextlib
import json

import numpy as np
import pytest

from vljax import cli
from vljax.train import loop

SMOKE_STEPS = 20
SMOKE_LOG_EVERY = 5


def smoke_argv(recipe, workdir, *extra):
    """`vljax train` of configs/RECIPE.py:tiny, shortened to SMOKE_STEPS steps."""
    return [
        "train",
        "--config",
        f"configs/{recipe}.py:tiny",
        "--workdir",
        str(workdir),
        f"--config.total_steps={SMOKE_STEPS}",
        f"--config.log_every_steps={SMOKE_LOG_EVERY}",
        *extra,
    ]


@contextlib.contextmanager
def no_report():
    """`vljax train` runs inside write no report.md (nor its plots)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "write_report", lambda workdir: None)
        yield


def smoke_train(recipe, workdir, *extra):
    """`vljax train` of smoke_argv(recipe, workdir, *extra), in process, without the report;
    returns its exit code."""
    with no_report():
        return cli.main(smoke_argv(recipe, workdir, *extra))


def losses(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


def assert_trained_smoke_steps(workdir):
    """Every SMOKE_LOG_EVERY-th step logged, all finite, the last below the first."""
    got = losses(workdir)
    assert sorted(got) == list(range(SMOKE_LOG_EVERY, SMOKE_STEPS + 1, SMOKE_LOG_EVERY))
    assert all(np.isfinite(v) for v in got.values())
    assert got[SMOKE_STEPS] < got[SMOKE_LOG_EVERY]
