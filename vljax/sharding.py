"""The device mesh and shardings, all derived from config data (mesh, sharding.rules)."""

import contextlib
import math

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vljax.choices import MESH_AXES
from vljax.errors import ConfigError


def make_mesh(
    mesh_config, devices=None, *, stand_in_granules: bool = False, fewer_devices: bool = False
) -> Mesh:
    """Builds a (data, fsdp, tensor) mesh; one axis may be -1 (= the rest of the devices).

    The mesh takes every device, except with `fewer_devices` (`vljax train` in one process):
    then fixed axes that need fewer devices than there are take the first of them, e.g.
    `--config.mesh.data=2` for a quick run on 2 devices of a machine.

    `mesh_config.dcn_data` = K > 1 makes it a hybrid mesh (`create_hybrid_device_mesh`): the
    `data` axis is split K ways over the slow network between granules (TPU slices when the
    devices belong to several, else processes, i.e. hosts) and the rest of every axis stays
    on the fast one (ICI / NVLink) inside a granule.

    `stand_in_granules` (an ahead-of-time compile, `vljax compile`): when `devices` are all of
    one process and one slice, K equal runs of consecutive devices stand in for the K hosts,
    as a K-process run's devices are numbered (process p holds the p-th run), so the mesh has
    the device order the real hybrid mesh would have."""
    devices = list(devices if devices is not None else jax.devices())
    sizes = {axis: int(mesh_config.get(axis, 1)) for axis in MESH_AXES}
    free = [axis for axis, size in sizes.items() if size == -1]
    if len(free) > 1:
        raise ConfigError(f"config.mesh: only one axis may be -1, got {free}")
    known = math.prod(size for size in sizes.values() if size != -1)
    if free:
        if len(devices) % known:
            raise ConfigError(
                f"config.mesh: {len(devices)} devices are not divisible by the fixed axes' "
                f"product {known}; change config.mesh"
            )
        sizes[free[0]] = len(devices) // known
    total = math.prod(sizes.values())
    if fewer_devices and total < len(devices):
        devices = devices[:total]
    if total > len(devices):
        raise ConfigError(
            f"config.mesh {sizes} needs {total} devices but {len(devices)} are available; "
            "set one axis to -1 to use the rest"
        )
    if total < len(devices):
        raise ConfigError(
            f"config.mesh {sizes} needs {total} devices but the run has {len(devices)}; set "
            "one axis to -1 to use them all (a mesh on part of the devices is for one process)"
        )
    shape = tuple(sizes[axis] for axis in MESH_AXES)
    dcn_data = int(mesh_config.get("dcn_data", 1))
    if dcn_data == 1:
        return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)
    return Mesh(_hybrid_devices(shape, dcn_data, devices, stand_in_granules), MESH_AXES)


def _hybrid_devices(shape, dcn_data: int, devices, stand_in_granules=False) -> np.ndarray:
    """Devices of a (data, fsdp, tensor) mesh whose data axis is dcn_data granules x the rest."""
    slices = {getattr(d, "slice_index", 0) for d in devices}
    by_slice = len(slices) > 1
    granules = len(slices) if by_slice else len({d.process_index for d in devices})
    what = "TPU slices" if by_slice else "processes (hosts)"
    stand_in = stand_in_granules and granules == 1
    if stand_in and len(devices) % dcn_data:
        raise ConfigError(
            f"config.mesh.dcn_data = {dcn_data} does not divide the {len(devices)} devices "
            "into equal hosts / slices; compile for a multiple of it"
        )
    if dcn_data != granules and not stand_in:
        raise ConfigError(
            f"config.mesh.dcn_data = {dcn_data} must equal the number of {what}, {granules}: "
            "the data axis is split over the network between them (one process per host). "
            f"Set --config.mesh.dcn_data={granules}, or 1 for a flat mesh (`vljax compile "
            "--devices N` compiles a hybrid layout on one machine, runs of devices standing in "
            "for the hosts)"
        )
    if shape[0] % dcn_data:
        raise ConfigError(
            f"config.mesh.dcn_data = {dcn_data} does not divide the data axis ({shape[0]} "
            f"devices of mesh {dict(zip(MESH_AXES, shape, strict=True))}); make config.mesh.data "
            f"a multiple of {dcn_data}, e.g. -1"
        )
    ici = (shape[0] // dcn_data, *shape[1:])
    if stand_in:  # create_hybrid_device_mesh's blocks, one per stand-in host along data
        per_host = len(devices) // dcn_data
        hosts = [devices[i * per_host : (i + 1) * per_host] for i in range(dcn_data)]
        return np.concatenate([mesh_utils.create_device_mesh(ici, host) for host in hosts])
    dcn = (dcn_data,) + (1,) * (len(shape) - 1)
    return mesh_utils.create_hybrid_device_mesh(ici, dcn, devices, process_is_granule=not by_slice)


def logical_rules(sharding_config):
    return tuple(
        (name, tuple(axes) if isinstance(axes, list) else axes)
        for name, axes in sharding_config.rules
    )


@contextlib.contextmanager
def activation_sharding(mesh: Mesh, rules):
    """Binds logical axis `rules` (`logical_rules(config.sharding)`) and the mesh while a model
    is traced, so the towers' `nn.with_logical_constraint` calls (vljax/models/layers.py
    `constrain`) reach XLA; without rules bound they are no-ops. Enter it inside the jitted
    function (`jax.set_mesh` may not be called under jit, the abstract mesh may; the jit's
    device set comes from its sharded arguments)."""
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nn.logical_axis_rules(rules):
        yield


def batch_axes(sharding_config) -> tuple[str, ...]:
    """The mesh axes the `batch` logical axis is split over (the loss's batch_axes)."""
    for name, axes in logical_rules(sharding_config):
        if name == "batch":
            if axes is None:
                return ()
            return (axes,) if isinstance(axes, str) else tuple(axes)
    return ()


def data_parallel_size(mesh: Mesh, sharding_config) -> int:
    return math.prod(mesh.shape[axis] for axis in batch_axes(sharding_config))


def check_batch(global_batch: int, mesh: Mesh, sharding_config, what="config.batch_size"):
    size = data_parallel_size(mesh, sharding_config)
    if global_batch % size:
        raise ConfigError(
            f"{what} = {global_batch} is not divisible by the data-parallel size {size} "
            f"(mesh axes {batch_axes(sharding_config)} = {size} devices); use a multiple of {size}"
        )
    if global_batch % jax.process_count():
        raise ConfigError(
            f"{what} = {global_batch} is not divisible by the process count {jax.process_count()}"
        )


def batch_sharding(mesh: Mesh, sharding_config) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(batch_axes(sharding_config) or None))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def param_shardings(boxed_params, mesh: Mesh, sharding_config):
    """NamedShardings for a pytree of logically-partitioned (boxed) params or their shapes."""
    specs = nn.get_partition_spec(boxed_params)
    return nn.logical_to_mesh_sharding(specs, mesh, logical_rules(sharding_config))


def check_param_shardings(abstract_params, shardings, mesh: Mesh):
    """Refuses params whose sharded dims do not divide over their mesh axes (e.g. heads over
    `tensor`), naming the param and the fix, before jit refuses them with a shape error."""
    problems = []
    flat_params = jax.tree_util.tree_flatten_with_path(abstract_params)[0]
    for (path, leaf), sharding in zip(flat_params, jax.tree.leaves(shardings), strict=True):
        for dim, axes in zip(leaf.shape, sharding.spec):
            axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
            ways = math.prod(mesh.shape[axis] for axis in axes)
            if dim % ways:
                name = "/".join(str(getattr(k, "key", k)) for k in path)
                problems.append(f"{name} {leaf.shape}: {dim} over mesh axes {axes} = {ways}")
    if problems:
        raise ConfigError(
            "config.mesh does not divide these parameter dims (sharded by config.sharding.rules):"
            "\n  " + "\n  ".join(problems) + "\nchange config.mesh (e.g. a tensor size that "
            "divides the heads and mlp_dim of both towers) or the model sizes"
        )


def process_rows(global_size: int, mesh: Mesh, sharding_config) -> tuple[tuple[int, int], ...]:
    """The rows of a global batch of `global_size` that this process's devices hold under the
    batch sharding, as sorted [start, stop) blocks: the only rows its data pipeline loads, in
    the order `make_array_from_process_local_data` reads them (the local rows are the blocks
    concatenated in order). On vljax's meshes on CPU and GPU, process i holds the one block
    [i * B / P, (i + 1) * B / P); a device order that interleaves processes gives several."""
    sharding = batch_sharding(mesh, sharding_config)
    index_map = sharding.addressable_devices_indices_map((global_size,))
    blocks = []
    for start, stop in sorted({idx[0].indices(global_size)[:2] for idx in index_map.values()}):
        if blocks and blocks[-1][1] == start:
            blocks[-1] = (blocks[-1][0], stop)
        else:
            blocks.append((start, stop))
    return tuple(blocks)


def global_batch(local_batch: dict, mesh: Mesh, sharding_config) -> dict:
    """Assembles each process's local rows (`process_rows`) into global arrays sharded over
    the batch axes."""
    sharding = batch_sharding(mesh, sharding_config)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch
    )
