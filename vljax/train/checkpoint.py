"""Checkpoints: orbax CheckpointManager (async, keep-N) of the train state and data iterator.

Integrity: once a save has completed (`finalize`, before the next save and at the end), a
sha256 of each of its files is written to `<step>/vljax_checksums.json`; a restore verifies
them first and checks that every parameter is finite. Training and `load_run` without a step
fall back to the newest earlier checkpoint that restores, saying so; an explicit step never
falls back. Pruning to `keep_checkpoints` never deletes the newest checksummed checkpoint.

A checkpoint holds two items: `state` (step, params, optimizer state; restored onto whatever
mesh the current run has, so 8 devices -> 4 works) and `data` (the data iterator's JSON
state: the batches consumed, which does not depend on the process count, so a resumed run
sees exactly the batches an uninterrupted one would, also on another number of processes).
"""

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from vljax import sharding as shd
from vljax.errors import CheckpointError
from vljax.train.state import build_parts

CHECKPOINT_DIR = "checkpoints"
CHECKSUMS = "vljax_checksums.json"  # in each step folder, written once the save completed

# Orbax saves a replicated array in slices, one per replica, each cut by its own dispatched
# (and, per shape, compiled) slice op. For small arrays that costs more than the parallel write
# saves: 192 slice compiles took 5.7 s of a 20-step tiny run's 9 s first save on 8 CPU devices.
# Arrays whose slice per replica is under this many bytes are written whole by one replica.
MIN_REPLICA_SLICE_BYTES = 1 << 20
# Orbax logs a warning on every override of its registry; this one is deliberate, so the
# warning is held back rather than printed at each `vljax` start.
_absl_logger = logging.getLogger("absl")
_level = _absl_logger.level
_absl_logger.setLevel(logging.ERROR)
try:
    ocp.type_handlers.register_type_handler(
        jax.Array,
        ocp.type_handlers.ArrayHandler(
            min_slice_bytes_for_replica_parallel=MIN_REPLICA_SLICE_BYTES
        ),
        override=True,
    )
finally:
    _absl_logger.setLevel(_level)


def make_manager(workdir: str) -> ocp.CheckpointManager:
    # Pruning is ours (`finalize`), not orbax's max_to_keep: it must never delete the newest
    # checkpoint whose checksums were written.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None, enable_async_checkpointing=True, create=True
    )
    return ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)),
        item_names=("state", "data"),
        options=options,
    )


def step_dir(manager, step: int) -> str:
    return os.path.join(str(manager.directory), str(step))


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files(folder: str) -> list[str]:
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), folder)
            if rel != CHECKSUMS:
                found.append(rel)
    return sorted(found)


def write_checksums(folder: str):
    """Records a sha256 of every file of a completed checkpoint (atomically)."""
    sums = {rel: _digest(os.path.join(folder, rel)) for rel in _files(folder)}
    tmp = os.path.join(folder, CHECKSUMS + ".tmp")
    with open(tmp, "w") as f:
        json.dump(sums, f, indent=0, sort_keys=True)
    os.replace(tmp, os.path.join(folder, CHECKSUMS))


def verify_checksums(folder: str, step: int):
    """Raises CheckpointError naming the first file that is missing or differs. A checkpoint
    without checksums (its save never completed them) is left to the restore to judge."""
    path = os.path.join(folder, CHECKSUMS)
    if not os.path.exists(path):
        return
    try:
        with open(path) as f:
            sums = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {step}: {CHECKSUMS} is unreadable ({e})") from None
    for rel, want in sums.items():
        file = os.path.join(folder, rel)
        if not os.path.exists(file):
            raise CheckpointError(f"checkpoint {step}: {rel} is missing")
        if _digest(file) != want:
            raise CheckpointError(f"checkpoint {step}: {rel} does not match its checksum")


def verified_steps(manager) -> list[int]:
    return [
        s
        for s in manager.all_steps()
        if os.path.exists(os.path.join(step_dir(manager, s), CHECKSUMS))
    ]


def finalize(manager, keep: int):
    """Waits for the pending save, writes the checksums of every completed checkpoint that
    lacks them (process 0 only: the filesystem is shared), then keeps the newest `keep`
    checkpoints, never deleting the newest verified one. Every process calls it: orbax's
    delete is a barrier across processes."""
    manager.wait_until_finished()
    if jax.process_index() == 0:
        for step in manager.all_steps():
            folder = step_dir(manager, step)
            if not os.path.exists(os.path.join(folder, CHECKSUMS)):
                write_checksums(folder)
    if jax.process_count() > 1:  # every process then sees the same checksums: same deletions
        multihost_utils.sync_global_devices("vljax checkpoint checksums")
    steps = sorted(manager.all_steps())
    verified = verified_steps(manager)
    protect = max(verified) if verified else None
    for step in steps[: max(len(steps) - max(keep, 1), 0)]:
        if step != protect:
            manager.delete(step)


def save(manager: ocp.CheckpointManager, step: int, state, data_state: dict | None, keep: int):
    finalize(manager, keep)  # the previous save is complete: record it before the next
    items = {"state": ocp.args.StandardSave(state)}
    items["data"] = ocp.args.JsonSave(data_state or {})
    manager.save(step, args=ocp.args.Composite(**items), force=True)


def _nonfinite_leaf(params) -> str | None:
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if not np.all(np.isfinite(np.asarray(jax.device_get(leaf), np.float32))):
            return jax.tree_util.keystr(path)
    return None


def restore(manager: ocp.CheckpointManager, step: int, abstract_state):
    """Restores (state, data_state) at `step` onto the shardings carried by `abstract_state`,
    after checking its files' checksums; its params must be finite. Any failure is a
    CheckpointError naming the step and the cause."""
    verify_checksums(step_dir(manager, step), step)
    try:
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
            ),
        )
    except Exception as e:  # orbax/tensorstore raise many kinds on damaged files
        cause = " ".join(str(e).split())[:300]
        raise CheckpointError(
            f"checkpoint {step} does not restore: {type(e).__name__}: {cause}"
        ) from None
    bad = _nonfinite_leaf(restored["state"].params)
    if bad is not None:
        raise CheckpointError(f"checkpoint {step}: parameter {bad} is not finite")
    return restored["state"], restored["data"] or None


def restore_latest(manager, abstract_state, set_aside: bool = False):
    """(state, data_state, step) from the newest checkpoint that restores, or None when there
    is none. Each newer one that fails is reported; with `set_aside` (a trainer, process 0)
    it is moved to `checkpoints/corrupt-<step>-<time>` so that the step can be saved again."""
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            state, data_state = restore(manager, step, abstract_state)
        except CheckpointError as e:
            print(f"{e}; falling back to an earlier checkpoint.")
            if set_aside:
                aside = os.path.join(str(manager.directory), f"corrupt-{step}-{int(time.time())}")
                os.replace(step_dir(manager, step), aside)
                print(f"Moved it to {aside} (delete it when you no longer need it).")
                manager.reload()  # forget the step, so that it can be saved again
            continue
        return state, data_state, step
    if manager.all_steps():
        raise CheckpointError(
            f"no checkpoint in {manager.directory} restores (see above); train in a new --workdir"
        )
    return None


@dataclasses.dataclass
class LoadedRun:
    """A finished or running run, read back for export, evals and inference."""

    config: ml_collections.ConfigDict
    params: Any  # host numpy pytree
    step: int
    tokenizer_path: str


def load_run(workdir: str, step: int | None = None) -> LoadedRun:
    """Reads a run directory's config, tokenizer and params at `step` (default: latest)."""

    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(
            f"{workdir} has no config.json: is it a vljax run directory (vljax train --workdir)?"
        )
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    manager = make_manager(workdir)
    steps = sorted(manager.all_steps())
    if not steps:
        raise CheckpointError(f"{workdir} has no checkpoints yet; train first")
    if step is not None and step not in steps:
        raise CheckpointError(f"{workdir} has no checkpoint at step {step}; it has {steps}")
    # One device is enough to read params back; the mesh shape does not matter to orbax.
    mesh = shd.make_mesh(
        ml_collections.ConfigDict(dict(data=1, fsdp=1, tensor=1)), jax.devices()[:1]
    )
    abstract = build_parts(config, mesh).abstract
    try:
        if step is None:  # the newest that restores
            state, _, step = restore_latest(manager, abstract)
        else:  # asked for: never another
            state, _ = restore(manager, step, abstract)
    finally:
        manager.close()
    params = jax.tree.map(np.asarray, state.params)
    return LoadedRun(
        config=config,
        params=params,
        step=int(step),
        tokenizer_path=tokenizer_path(workdir, config),
    )


def tokenizer_path(workdir: str, config) -> str:
    """The run's own tokenizer copy, else the configured one."""
    own = os.path.join(workdir, "tokenizer.model")
    if os.path.exists(own):
        return own
    return config.tokenizer.get("model")
