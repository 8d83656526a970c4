"""The trainer end to end: loss falls, exact resume, SIGTERM, 8 -> 4 devices, bad resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest

from tests.train.tiny import interrupt_at, tiny_argv
from vljax import cli
from vljax import sharding as shd
from vljax.config import build_config
from vljax.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED, NonFiniteError
from vljax.train import loop


def losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {row["step"]: row["loss"] for row in rows}


def test_loss_falls_and_run_dir_is_complete(full_run):
    got = losses(full_run)
    assert sorted(got) == list(range(1, 13))
    assert np.mean([got[s] for s in (10, 11, 12)]) < np.mean([got[s] for s in (1, 2, 3)])
    for name in ("config.json", "tokenizer.model", "report.md"):
        assert (full_run / name).exists(), name
    assert any((full_run / "tensorboard").iterdir())


def test_eval_json_has_the_contract_keys_and_vljax_eval_reproduces_it(copy_run):
    with open(copy_run / "eval.json") as f:
        at_end = json.load(f)
    assert at_end["step"] == 12
    keys = {"zeroshot/shapes/top1"} | {
        f"retrieval/shapes/{d}_r{k}" for d in ("txt2img", "img2txt") for k in (1, 5, 10)
    }
    assert keys <= set(at_end)
    assert all(0.0 <= at_end[k] <= 1.0 for k in keys)
    os.remove(copy_run / "eval.json")
    assert cli.main(["eval", "--workdir", str(copy_run)]) == 0
    with open(copy_run / "eval.json") as f:
        again = json.load(f)
    # Evals on the checkpoint read back from disk equal those on the live params.
    assert again == pytest.approx(at_end, abs=1e-6)


def test_resume_after_ctrl_c_is_bit_exact(full_run, tmp_path, monkeypatch, capsys):
    """Ctrl-C during step 5 saves at step 5 and exits 130 without a traceback; rerunning
    continues from it with identical losses. (SIGTERM: the real-process test below.) No
    periodic checkpoints: the step-5 one is the only one to resume from, and the saves cost
    time."""

    interrupt_at(monkeypatch, 5)
    argv = tiny_argv(tmp_path, total_steps=12, checkpoint_every_steps=0)
    assert cli.main(argv) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "Ctrl-C: saved a checkpoint at step 5" in err and "Traceback" not in err
    assert max(losses(tmp_path)) == 5
    assert [s for s in os.listdir(tmp_path / "checkpoints") if s.isdigit()] == ["5"]
    monkeypatch.undo()
    assert cli.main(argv) == 0
    assert losses(tmp_path) == losses(full_run)  # every step, bit for bit


def test_checkpoint_restores_onto_fewer_devices(full_run):
    """Saved from an 8-device data-parallel mesh, restored onto a 4-device mesh that splits
    the params over fsdp, with the same values. The run's optimizer is flat
    (`optimizer.flatten`, which a run refuses on an fsdp mesh): its vectors are restored
    replicated."""
    from vljax.train import checkpoint as ckpt
    from vljax.train.state import abstract_boxed_params, build_parts, state_shardings

    config = build_config(str(full_run / "config.json"))
    assert config.optimizer.flatten
    reference = ckpt.load_run(str(full_run)).params
    mesh4 = shd.make_mesh(
        ml_collections.ConfigDict(dict(data=2, fsdp=2, tensor=1)), jax.devices()[:4]
    )
    parts = build_parts(config, shd.make_mesh(config.mesh))
    boxed = abstract_boxed_params(parts.boxed_init)
    abstract, _ = state_shardings(boxed, parts.tx, mesh4, config.sharding)
    assert any(not p.sharding.is_fully_replicated for p in jax.tree.leaves(abstract.params))
    manager = ckpt.make_manager(str(full_run))
    state, data_state = ckpt.restore(manager, 12, abstract)
    manager.close()
    assert data_state
    assert int(state.step) == 12
    for got, want in zip(jax.tree.leaves(state.params), jax.tree.leaves(reference)):
        assert len(got.sharding.device_set) == 4
        np.testing.assert_array_equal(np.asarray(got), want)


def test_resume_with_another_model_fails_clearly(copy_run, capsys):
    code = cli.main(tiny_argv(copy_run, total_steps=12, model__image__width=48))
    err = capsys.readouterr().err
    assert code == 2
    assert "model.image.width: checkpoint has 32, config has 48" in err


def test_sigterm_to_a_real_process_saves_and_exits_preempted(tmp_path):
    flags = os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=2")
    env = dict(os.environ, XLA_FLAGS=flags)
    argv = tiny_argv(tmp_path, total_steps=100000, checkpoint_every_steps=0)
    proc = subprocess.Popen([sys.executable, "-m", "vljax.cli", *argv], env=env)
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == EXIT_PREEMPTED
    steps = os.listdir(tmp_path / "checkpoints")
    assert [s for s in steps if s.isdigit()], steps


def test_non_finite_steps_are_skipped_counted_then_the_run_stops(tmp_path, monkeypatch, capsys):
    """NaN images from the 2nd batch on: those updates are skipped and counted, and after
    10 in a row (at step 11 of 12) the run stops with a message instead of training on
    garbage. 12 steps: the uint8 step is the shared run's program (the session's compile
    cache has it); only the float-input one compiles anew."""

    real = loop.make_train_iterator

    class Poisoned:
        def __init__(self, inner):
            self.inner, self.n = inner, 0

        def __next__(self):
            self.n += 1
            batch = dict(next(self.inner))
            if self.n >= 2:
                # float model input (the step takes it as well as uint8 pixels)
                batch["image"] = np.full(batch["image"].shape, np.nan, np.float32)
            return batch

        def get_state(self):
            return self.inner.get_state()

        def set_state(self, state):
            self.inner.set_state(state)

    monkeypatch.setattr(loop, "make_train_iterator", lambda *a, **k: Poisoned(real(*a, **k)))
    code = cli.main(tiny_argv(tmp_path, total_steps=12, checkpoint_every_steps=0))
    err = capsys.readouterr().err
    assert code == NonFiniteError.exit_code
    assert "10 non-finite updates in a row" in err and "Traceback" not in err
    with open(tmp_path / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert rows[0]["nonfinite_total"] == 0 and rows[1]["nonfinite_total"] == 1
    assert rows[-1]["step"] <= 11
    # Skipped steps leave the params alone: the param norm stays at its step-1 value.
    assert {row["param_norm"] for row in rows[1:]} == {rows[0]["param_norm"]}
    # The logged learning rate is the optimizer's, whose count stops at skipped updates.
    assert {row["learning_rate"] for row in rows[1:]} == {rows[1]["learning_rate"]}
