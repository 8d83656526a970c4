"""Ahead-of-time compile of a config's train step for a device mesh, from abstract arrays.

Nothing of full size is allocated: the state and the batch are `jax.ShapeDtypeStruct`s with
their shardings, so a ViT-L/14 step for 256 devices compiles on a laptop with fake CPU devices
(or for a TPU topology with libtpu and no TPU attached), and an out-of-memory mesh is caught
before a pod is booked. `vljax compile` (vljax/train/compile_cli.py) prints this report.

Parameter and optimizer bytes per device come from the shardings (each leaf's largest shard);
argument, output and temporary bytes from the compiled program's `memory_analysis()` (XLA's
buffer assignment for that backend: CPU's figures estimate a TPU's, a `--topology` compile
gives the TPU's own); collectives are the instructions of the compiled HLO (one in a loop body
counts once, however many times the loop runs). FLOPs per step are counted on the traced
step's jaxpr (vljax/train/flops.py), loops at their trip count: XLA's cost analysis counts a
loop body once, so for a scanned stack (model.scan) it sees one layer per tower.
"""

import dataclasses
import math
import re
import time
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from vljax import sharding as shd
from vljax.data.preprocess import PIXEL_FIELDS
from vljax.train.flops import step_flops
from vljax.train.state import RunParts, build_parts, num_params
from vljax.train.step import make_train_step

COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
# `%x = f32[..] all-gather(...)`, or its async form `all-gather-start(` (counted once: the
# matching `-done` is the same collective).
_COLLECTIVE = re.compile(r"\s(" + "|".join(COLLECTIVES) + r")(?:-start)?\(")


@dataclasses.dataclass(frozen=True)
class TrainStep:
    """A config's train step on a mesh, with the abstract batch it compiles for."""

    parts: RunParts  # parts.abstract: the state's shapes with their shardings
    mesh: Mesh
    step: Any  # the jitted step (vljax.train.step.make_train_step)
    batch: dict  # field -> ShapeDtypeStruct sharded over the batch axes


def abstract_batch(method, config, mesh: Mesh, batch_size: int | None = None) -> dict:
    """The method's batch fields at `batch_size` (default config.batch_size) rows, as abstract
    arrays sharded like the loader's global batch. Images are uint8, as the loader ships them
    (the step scales them on device)."""
    n = config.batch_size if batch_size is None else batch_size
    shapes = jax.eval_shape(lambda: method.example_batch(config.model, n))
    sharding = shd.batch_sharding(mesh, config.sharding)
    return {
        name: jax.ShapeDtypeStruct(
            x.shape, jnp.uint8 if name in PIXEL_FIELDS else x.dtype, sharding=sharding
        )
        for name, x in shapes.items()
    }


def build_train_step(config, devices=None, *, stand_in_granules=False) -> TrainStep:
    """The mesh of config.mesh over `devices` (default: jax.devices()), the run's parts and
    its jitted step; refuses a batch or param dims that do not divide over the mesh.
    `stand_in_granules`: a hybrid mesh (mesh.dcn_data > 1) over one process's devices, runs
    of them standing in for the hosts (vljax.sharding.make_mesh)."""
    mesh = shd.make_mesh(config.mesh, devices, stand_in_granules=stand_in_granules)
    shd.check_batch(config.batch_size, mesh, config.sharding)
    parts = build_parts(config, mesh)
    step = make_train_step(parts, config, mesh)
    return TrainStep(parts, mesh, step, abstract_batch(parts.method, config, mesh))


def bytes_per_device(tree) -> int:
    """Bytes one device holds of a tree of sharded abstract arrays: each leaf's largest shard
    (all shards are equal when dims divide, which build_parts checks)."""
    return sum(
        math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(tree)
    )


def compiled_flops(compiled) -> float:
    """FLOPs of one device's program, from a compiled step's cost_analysis."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0))


def count_collectives(hlo_text: str) -> dict[str, int]:
    """Collective instructions in a compiled module's HLO text, by kind (all kinds listed)."""
    counts = dict.fromkeys(COLLECTIVES, 0)
    for match in _COLLECTIVE.finditer(hlo_text):
        counts[match.group(1)] += 1
    return counts


@dataclasses.dataclass(frozen=True)
class CompileReport:
    """Per-device memory, FLOPs and collectives of a train step; the compiled figures are
    None when it was only sharded (`compile=False`)."""

    devices: int
    device_kind: str  # e.g. "cpu", "TPU v5 lite"
    mesh: dict  # axis -> size
    batch_size: int
    params: int  # parameter count
    param_bytes_per_device: int
    opt_state_bytes_per_device: int
    argument_bytes_per_device: int | None  # state + batch shards (memory_analysis)
    output_bytes_per_device: int | None
    alias_bytes_per_device: int | None  # outputs written into donated arguments
    temp_bytes_per_device: int | None  # activations and other temporaries
    # arguments + outputs - aliased + temporaries: the step's peak, as XLA's buffer
    # assignment counts it (the runtime adds its own overhead)
    total_bytes_per_device: int | None
    flops_per_step: float | None  # matmul FLOPs, all devices (vljax/train/flops.py)
    # XLA's cost_analysis of one device's compiled program: a loop body counts once, so with
    # scanned layers this is about one layer's worth per tower (kept for comparison)
    xla_flops_per_device: float | None
    collectives: dict | None  # kind -> instructions in the compiled HLO
    build_s: float  # config -> sharded abstract state and traced step
    compile_s: float | None  # tracing, lowering and XLA's compile

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


def compile_report(config, devices=None, compile: bool = True) -> CompileReport:
    """Builds `config`'s train step on a mesh of `devices` (see `build_train_step`) and, with
    `compile`, lowers and compiles it from abstract arrays; no parameter is materialised.
    A hybrid mesh (mesh.dcn_data = K > 1) on devices of one process and slice (fake CPU
    devices, one host's accelerators) is laid out as K hosts would hold it."""
    start = time.perf_counter()
    built = build_train_step(config, devices, stand_in_granules=True)
    abstract = built.parts.abstract
    build_s = time.perf_counter() - start
    mesh = built.mesh
    common = dict(
        devices=mesh.size,
        device_kind=mesh.devices.flat[0].device_kind,
        mesh={axis: int(size) for axis, size in mesh.shape.items()},
        batch_size=int(config.batch_size),
        params=num_params(abstract.params),
        param_bytes_per_device=bytes_per_device(abstract.params),
        opt_state_bytes_per_device=bytes_per_device(abstract.opt_state),
        build_s=build_s,
    )
    if not compile:
        unknown = [f.name for f in dataclasses.fields(CompileReport) if f.name not in common]
        return CompileReport(**common, **dict.fromkeys(unknown))
    start = time.perf_counter()
    traced = built.step.trace(abstract, built.batch)
    compiled = traced.lower().compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    return CompileReport(
        **common,
        argument_bytes_per_device=memory.argument_size_in_bytes,
        output_bytes_per_device=memory.output_size_in_bytes,
        alias_bytes_per_device=memory.alias_size_in_bytes,
        temp_bytes_per_device=memory.temp_size_in_bytes,
        total_bytes_per_device=memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        - memory.alias_size_in_bytes
        + memory.temp_size_in_bytes,
        flops_per_step=step_flops(traced),
        xla_flops_per_device=compiled_flops(compiled),
        collectives=count_collectives(compiled.as_text()),
        compile_s=compile_s,
    )
