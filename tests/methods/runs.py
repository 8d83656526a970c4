"""What the methods' smoke runs check: the logged losses of a run directory."""

import json

import numpy as np


def losses(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


def assert_trained_60_steps(workdir):
    got = losses(workdir)
    assert sorted(got) == list(range(10, 61, 10))
    assert all(np.isfinite(v) for v in got.values())
    assert got[60] < got[10]
