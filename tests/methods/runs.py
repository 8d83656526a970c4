"""What the methods' smoke runs check: the logged losses of a run directory.

The smoke runs train a `:tiny` recipe for SMOKE_STEPS steps rather than the recipe's 60
(`smoke_argv`): the step compiles the same program shapes either way, and 20 steps already
show a finite loss that falls (from well above its step-20 value at step 5). The objectives'
recipes (NegNCE, TPM-CL, M2-Encoder, 1-to-K, multi-positive, Symile) train their own
RECIPE_STEPS: their issue asks for exactly that, and a tiny step costs about 0.15 s here.

The smoke runs train on 2 of the 8 fake devices (`SMOKE_MESH`): the data-parallel mesh still
splits every batch and every sharded loss still communicates, but a tiny step's fixed cost per
device dominates its run (a NegNCE tiny step: 33 CPU ms on 8 devices, 13 on 2); the 8-device
trainer is tested in tests/train. Symile's run (test_symile_method.py) keeps all 8: its batch
of 256 through the conv stem is the work, and split 2 ways it took more CPU, not less.

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
RECIPE_STEPS = 60  # configs/demo.py's tiny()
SMOKE_LOG_EVERY = 5
SMOKE_MESH = ("--config.mesh.data=2", "--config.mesh.fsdp=1", "--config.mesh.tensor=1")


def smoke_argv(recipe, workdir, *extra, steps=SMOKE_STEPS):
    """`vljax train` of configs/RECIPE.py:tiny on SMOKE_MESH, for `steps` steps."""
    return [
        "train",
        "--config",
        f"configs/{recipe}.py:tiny",
        "--workdir",
        str(workdir),
        f"--config.total_steps={steps}",
        f"--config.log_every_steps={SMOKE_LOG_EVERY}",
        *SMOKE_MESH,
        *extra,
    ]


@contextlib.contextmanager
def no_report():
    """`vljax train` runs inside write no report.md (nor its plots)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "write_report", lambda workdir: None)
        yield


def smoke_train(recipe, workdir, *extra, steps=SMOKE_STEPS):
    """`vljax train` of smoke_argv(recipe, workdir, *extra, steps=steps), in process, without
    the report; returns its exit code."""
    with no_report():
        return cli.main(smoke_argv(recipe, workdir, *extra, steps=steps))


def losses(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


def assert_trained_smoke_steps(workdir, steps=SMOKE_STEPS):
    """Every SMOKE_LOG_EVERY-th step logged, all finite, the last below the first."""
    got = losses(workdir)
    assert sorted(got) == list(range(SMOKE_LOG_EVERY, steps + 1, SMOKE_LOG_EVERY))
    assert all(np.isfinite(v) for v in got.values())
    assert got[steps] < got[SMOKE_LOG_EVERY]
