"""The training loop: one loop for every method (a method is a config + model/loss modules).

config -> data -> global batch on the mesh -> jitted step -> metrics / checkpoints / evals.
Holds the workdir's lock for the run. Resumes exactly from the workdir's latest checkpoint
that restores. SIGTERM and the first Ctrl-C save a checkpoint at the next step boundary and
stop with a `StoppedEarly` error (its exit code says the run is not finished); a second
Ctrl-C aborts at once.
"""

import contextlib
import json
import os
import signal
import sys
import time

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from vljax import sharding as shd
from vljax.config import save_config
from vljax.data.pipeline import BATCH_FIELDS, make_train_iterator
from vljax.data.tokenizer import Tokenizer, tokenizer_for_run
from vljax.errors import (
    EXIT_INTERRUPTED,
    EXIT_PREEMPTED,
    ConfigError,
    NonFiniteError,
    StoppedEarly,
)
from vljax.evals.run import Evaluator
from vljax.export.hf_tokenizer import load_tokenizer
from vljax.train import checkpoint as ckpt
from vljax.train.init_from import initial_params
from vljax.train.progress import Progress
from vljax.train.report import MetricsWriter, write_report
from vljax.train.state import build_parts, init_state, num_params
from vljax.train.step import make_train_step
from vljax.train.workdir_lock import WorkdirLock


class StopRequest:
    """Turns SIGTERM and the first Ctrl-C into a flag the loop checks at step boundaries; a
    second Ctrl-C raises KeyboardInterrupt at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum = None
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    @property
    def requested(self):
        return self.signum is not None

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.signum is not None:
            raise KeyboardInterrupt
        if signum == signal.SIGINT:
            print(
                "\nCtrl-C: saving a checkpoint at the next step boundary; "
                "Ctrl-C again to abort without saving.",
                file=sys.stderr,
            )
        self.signum = self.signum or signum

    def stopped(self, step) -> StoppedEarly:
        """The error that ends a stopped run, after its checkpoint is saved."""
        if self.signum == signal.SIGINT:
            what, code = "Ctrl-C", EXIT_INTERRUPTED
        else:
            what, code = "SIGTERM", EXIT_PREEMPTED
        return StoppedEarly(
            f"{what}: saved a checkpoint at step {step}; resume with the same command", code
        )

    def restore(self):
        for s, previous in self._previous.items():
            signal.signal(s, previous)


def check_resume_compatible(config, workdir):
    """A resumed run must have the model it saved; anything else would restore garbage."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = ml_collections.ConfigDict(json.load(f))
    old, new = saved.model.to_dict(), config.model.to_dict()
    diffs = []

    def walk(a, b, prefix):
        for key in sorted(set(a) | set(b)):
            va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
            if isinstance(va, dict) and isinstance(vb, dict):
                walk(va, vb, f"{prefix}{key}.")
            elif va != vb:
                diffs.append(f"model.{prefix}{key}: checkpoint has {va!r}, config has {vb!r}")

    walk(old, new, "")
    if diffs:
        raise ConfigError(
            f"{workdir} holds checkpoints of a different model; cannot resume:\n  "
            + "\n  ".join(diffs)
            + "\nUse a new --workdir, or the checkpoint's model settings."
        )


def ensure_tokenizer(config, workdir):
    """The run's tokenizer: WORKDIR/tokenizer.model (copied or trained by process 0), or a
    Hugging Face tokenizer folder given by `vljax import`, used where it is."""

    given = config.tokenizer.get("model")
    if given and not given.endswith(".model"):
        tokenizer = load_tokenizer(given)
    else:
        if jax.process_index() == 0:
            tokenizer_for_run(config, workdir)
        multihost_utils.sync_global_devices("tokenizer")
        tokenizer = Tokenizer(os.path.join(workdir, "tokenizer.model"))
    if tokenizer.vocab_size > config.model.text.vocab_size:
        raise ConfigError(
            f"tokenizer has {tokenizer.vocab_size} ids but config.model.text.vocab_size = "
            f"{config.model.text.vocab_size}; set --config.model.text.vocab_size="
            f"{tokenizer.vocab_size}"
        )
    return tokenizer


def say(message: str):
    """Prints on process 0 only: one line per run, not one per host."""
    if jax.process_index() == 0:
        print(message)


def _host(metrics):
    return {k: float(np.asarray(v)) for k, v in metrics.items()}


def train(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains (or resumes) the run in `workdir`; returns the final eval results. Raises
    `StoppedEarly` after saving when SIGTERM or Ctrl-C stops it."""
    os.makedirs(workdir, exist_ok=True)
    lock = WorkdirLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
    with lock:
        return _train(config, workdir)


def _train(config, workdir):

    # Everything that can be refused is checked before the tokenizer costs any time.
    mesh = shd.make_mesh(config.mesh, fewer_devices=jax.process_count() == 1)
    shd.check_batch(config.batch_size, mesh, config.sharding)
    parts = build_parts(config, mesh)
    missing = [f for f in parts.method.batch_fields if f not in BATCH_FIELDS]
    if missing:
        raise ConfigError(
            f"config.method={config.method!r} needs batch fields {missing} that the data "
            f"pipeline does not deliver (it gives {', '.join(BATCH_FIELDS)})"
        )
    keep = int(config.keep_checkpoints)
    manager = ckpt.make_manager(workdir)
    if manager.latest_step() is not None:
        check_resume_compatible(config, workdir)
    tokenizer = ensure_tokenizer(config, workdir)
    data_iter = make_train_iterator(
        config,
        tokenizer,
        seed=int(config.seed),
        fields=parts.method.batch_fields,
        rows=shd.process_rows(config.batch_size, mesh, config.sharding),
    )

    restored = ckpt.restore_latest(manager, parts.abstract, set_aside=jax.process_index() == 0)
    if restored is not None:
        state, data_state, start = restored
        if data_state:
            data_iter.set_state(data_state)
        say(f"Resumed from {workdir} at step {start}.")
    else:
        init_params = initial_params(config)
        if init_params is not None and parts.method.adapt_init_params is not None:
            init_params = parts.method.adapt_init_params(init_params, config)
        include = list(config.init_from_include)
        state = init_state(parts, int(config.seed), init_params, include)
        start = 0
    # Written once the state is built: a run that fails before leaves no config to hold
    # the next attempt to (only checkpoints do, through check_resume_compatible).
    if jax.process_index() == 0:
        save_config(config, os.path.join(workdir, "config.json"))
    subset = (
        f" on {mesh.size} of {jax.device_count()} devices" if mesh.size < jax.device_count() else ""
    )
    say(
        f"Model: {num_params(state.params) / 1e6:.2f}M params; mesh {dict(mesh.shape)}{subset}; "
        f"global batch {config.batch_size}; steps {start} -> {config.total_steps}"
        + (f"; {jax.process_count()} processes." if jax.process_count() > 1 else ".")
    )

    step_fn = make_train_step(parts, config, mesh)
    evaluator = Evaluator(config, parts.method, parts.model, tokenizer, workdir)
    writer = MetricsWriter(workdir, resume_step=start) if jax.process_index() == 0 else None
    progress = Progress(config.total_steps, start)
    stop = StopRequest()
    max_bad = int(config.optimizer.get("max_nonfinite_in_a_row", 10))
    log_every = max(int(config.log_every_steps), 1)
    ckpt_every = int(config.checkpoint_every_steps)
    eval_every = int(config.eval_every_steps)

    pending = None  # the previous step's metrics: read one step late to keep dispatch async
    window_start, window_images = time.perf_counter(), 0
    step = start
    try:
        while step < config.total_steps:
            batch = shd.global_batch(next(data_iter), mesh, config.sharding)
            state, metrics = step_fn(state, batch)
            step += 1
            window_images += config.batch_size
            if pending is not None:
                _check_nonfinite(pending, max_bad)
            pending = metrics
            if step % log_every == 0 or step == config.total_steps:
                host = _host(metrics)
                _check_nonfinite(metrics, max_bad)
                elapsed = time.perf_counter() - window_start
                host["images_per_s"] = window_images / max(elapsed, 1e-9)
                window_start, window_images = time.perf_counter(), 0
                if writer:
                    writer.write(step, host)
                progress.update(step, loss=host["loss"], images_per_s=host["images_per_s"])
            else:
                progress.tick(step)
            if ckpt_every and step % ckpt_every == 0 and step < config.total_steps:
                ckpt.save(manager, step, state, data_iter.get_state(), keep)
            if eval_every and step % eval_every == 0 and step < config.total_steps:
                results = evaluator.run(state.params, step)
                if writer:
                    writer.write(step, {k: v for k, v in results.items() if k != "step"})
            if stop.requested:
                ckpt.save(manager, step, state, data_iter.get_state(), keep)
                ckpt.finalize(manager, keep)
                raise stop.stopped(step)
        if pending is not None:
            _check_nonfinite(pending, max_bad)
        if manager.latest_step() != step:
            ckpt.save(manager, step, state, data_iter.get_state(), keep)
        ckpt.finalize(manager, keep)
    finally:
        stop.restore()
        progress.close()
        manager.close()
    results = evaluator.run(state.params, step, final=True)
    if writer:
        writer.close()
        write_report(workdir)
    return results


def _check_nonfinite(metrics, max_bad):
    in_a_row = int(np.asarray(metrics["nonfinite_in_a_row"]))
    if in_a_row >= max_bad:
        total = int(np.asarray(metrics["nonfinite_total"]))
        raise NonFiniteError(
            f"{in_a_row} non-finite updates in a row ({total} skipped in all): the run diverged. "
            "Lower config.optimizer.learning_rate, raise warmup_steps, or check the data; "
            "the last good checkpoint is untouched."
        )
