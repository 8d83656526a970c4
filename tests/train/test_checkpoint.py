"""Checkpoint integrity: checksums written once a save completes, verified at restore;
damaged or non-finite checkpoints are named, and training and eval fall back to the newest
earlier one that restores (an explicit --step never falls back)."""

import json
import os

import jax
import numpy as np
import pytest

from tests.train.tiny import tiny_argv
from vljax import cli
from vljax import sharding as shd
from vljax.config import build_config
from vljax.errors import CheckpointError
from vljax.train import checkpoint as ckpt
from vljax.train.state import build_parts


def largest_file(folder):
    files = [os.path.join(r, n) for r, _, names in os.walk(folder) for n in names]
    return max(files, key=os.path.getsize)


def garbage(path):
    with open(path, "wb") as f:
        f.write(os.urandom(os.path.getsize(path)))


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def flip_bytes(path):
    with open(path, "r+b") as f:
        size = os.path.getsize(path)
        f.seek(size // 2)
        chunk = bytearray(f.read(15))
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))


DAMAGE = {"garbage": garbage, "truncated": truncate, "flipped": flip_bytes}


def test_every_completed_checkpoint_has_checksums_and_keep_is_honoured(full_run):
    steps = sorted(int(s) for s in os.listdir(full_run / "checkpoints") if s.isdigit())
    assert steps == [6, 9, 12]  # keep_checkpoints = 3 of 3, 6, 9, 12
    for step in steps:
        folder = full_run / "checkpoints" / str(step)
        with open(folder / ckpt.CHECKSUMS) as f:
            sums = json.load(f)
        assert sums and all(os.path.exists(folder / rel) for rel in sums)


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_latest_checkpoint_falls_back_for_eval(copy_run, capsys, kind):
    damaged = largest_file(copy_run / "checkpoints" / "12")
    DAMAGE[kind](damaged)
    run = ckpt.load_run(str(copy_run))
    out = capsys.readouterr().out
    assert run.step == 9
    assert "checkpoint 12" in out and os.path.basename(damaged) in out and "falling back" in out
    with pytest.raises(CheckpointError, match="checkpoint 12"):
        ckpt.load_run(str(copy_run), step=12)


def test_eval_cli_falls_back_and_an_explicit_step_does_not(copy_run, capsys):
    garbage(largest_file(copy_run / "checkpoints" / "12"))
    assert cli.main(["eval", "--workdir", str(copy_run)]) == 0
    with open(copy_run / "eval.json") as f:
        assert json.load(f)["step"] == 9
    capsys.readouterr()
    code = cli.main(["eval", "--workdir", str(copy_run), "--step", "12"])
    err = capsys.readouterr().err
    assert code == CheckpointError.exit_code
    assert "checkpoint 12" in err and "Traceback" not in err


def test_non_finite_params_are_refused_naming_the_leaf(copy_run, capsys):
    config = build_config(str(copy_run / "config.json"))
    abstract = build_parts(config, shd.make_mesh(config.mesh)).abstract
    manager = ckpt.make_manager(str(copy_run))
    state, data = ckpt.restore(manager, 12, abstract)
    params = jax.tree.map(np.asarray, state.params)
    params["log_scale"] = np.float32(np.inf)
    state = state.replace(params=jax.tree.map(jax.numpy.asarray, params))
    ckpt.save(manager, 15, state, data, keep=10)
    ckpt.finalize(manager, keep=10)
    with pytest.raises(CheckpointError, match=r"checkpoint 15: parameter \['log_scale'\]"):
        ckpt.restore(manager, 15, abstract)
    manager.close()
    assert ckpt.load_run(str(copy_run)).step == 12


def test_pruning_keeps_the_newest_verified_checkpoint(copy_run):
    manager = ckpt.make_manager(str(copy_run))
    for step in (9, 12):  # as if their saves never completed their checksums
        os.remove(copy_run / "checkpoints" / str(step) / ckpt.CHECKSUMS)
    ckpt.finalize(manager, keep=1)  # writes the missing checksums first, then prunes
    assert sorted(manager.all_steps()) == [12]
    manager.close()


def test_training_falls_back_sets_the_damaged_one_aside_and_resumes_exactly(
    full_run, copy_run, capsys
):
    flip_bytes(largest_file(copy_run / "checkpoints" / "12"))
    os.remove(copy_run / "metrics.jsonl")
    assert cli.main(tiny_argv(copy_run, with_evals=True, total_steps=12)) == 0
    out = capsys.readouterr().out
    assert "checkpoint 12" in out and "Resumed from" in out and "at step 9" in out
    assert [d for d in os.listdir(copy_run / "checkpoints") if d.startswith("corrupt-12-")]

    def losses(workdir):
        with open(workdir / "metrics.jsonl") as f:
            return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}

    resumed, original = losses(copy_run), losses(full_run)
    assert sorted(resumed) == [10, 11, 12]
    assert all(resumed[s] == original[s] for s in resumed)
