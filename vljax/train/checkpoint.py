"""Checkpoints: orbax CheckpointManager (async, keep-N) of the train state and data iterator.

A checkpoint holds two items: `state` (step, params, optimizer state; restored onto whatever
mesh the current run has, so 8 devices -> 4 works) and `data` (the grain iterator's JSON
state, so a resumed run sees exactly the batches an uninterrupted one would).
"""

import dataclasses
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"


def make_manager(workdir: str, keep: int = 3) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=True, create=True
    )
    return ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)),
        item_names=("state", "data"),
        options=options,
    )


def save(manager: ocp.CheckpointManager, step: int, state, data_state: dict | None):
    items = {"state": ocp.args.StandardSave(state)}
    items["data"] = ocp.args.JsonSave(data_state or {})
    manager.save(step, args=ocp.args.Composite(**items), force=True)


def restore(manager: ocp.CheckpointManager, step: int, abstract_state):
    """Restores (state, data_state) at `step` onto the shardings carried by `abstract_state`."""
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
        ),
    )
    return restored["state"], restored["data"] or None


@dataclasses.dataclass
class LoadedRun:
    """A finished or running run, read back for export, evals and inference."""

    config: ml_collections.ConfigDict
    params: Any  # host numpy pytree
    step: int
    tokenizer_path: str


def load_run(workdir: str, step: int | None = None) -> LoadedRun:
    """Reads a run directory's config, tokenizer and params at `step` (default: latest)."""
    from vljax import sharding as shd
    from vljax.train.state import build_parts

    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(
            f"{workdir} has no config.json: is it a vljax run directory (vljax train --workdir)?"
        )
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    manager = make_manager(workdir, keep=int(config.get("keep_checkpoints", 3)))
    steps = sorted(manager.all_steps())
    if not steps:
        raise FileNotFoundError(f"{workdir} has no checkpoints yet; train first")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise FileNotFoundError(f"{workdir} has no checkpoint at step {step}; it has {steps}")
    # One device is enough to read params back; the mesh shape does not matter to orbax.
    mesh = shd.make_mesh(
        ml_collections.ConfigDict(dict(data=1, fsdp=1, tensor=1)), jax.devices()[:1]
    )
    state, _ = restore(manager, step, build_parts(config, mesh).abstract)
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
