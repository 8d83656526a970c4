"""Mesh construction and the batch-divisibility error."""

import jax
import ml_collections
import pytest

from configs import common
from vljax import sharding as shd


def test_mesh_fills_the_free_axis():
    mesh = shd.make_mesh(ml_collections.ConfigDict(dict(data=-1, fsdp=2, tensor=1)))
    assert dict(mesh.shape) == {"data": 4, "fsdp": 2, "tensor": 1}


def test_mesh_that_does_not_fit_the_devices_is_explained():
    with pytest.raises(ValueError, match="needs 6 devices but the run has 8"):
        shd.make_mesh(ml_collections.ConfigDict(dict(data=3, fsdp=2, tensor=1)))


def test_mesh_on_fewer_devices_takes_the_first_only_when_asked():
    config = ml_collections.ConfigDict(dict(data=2, fsdp=1, tensor=1))
    mesh = shd.make_mesh(config, fewer_devices=True)
    assert dict(mesh.shape) == {"data": 2, "fsdp": 1, "tensor": 1}
    assert list(mesh.devices.flat) == jax.devices()[:2]
    with pytest.raises(ValueError, match="needs 2 devices but the run has 8; set one axis to -1"):
        shd.make_mesh(config)
    with pytest.raises(ValueError, match="needs 16 devices but 8 are available"):
        shd.make_mesh(
            ml_collections.ConfigDict(dict(data=16, fsdp=1, tensor=1)), fewer_devices=True
        )


def test_batch_not_divisible_by_data_parallel_size_names_both_numbers():
    rules = ml_collections.ConfigDict(dict(rules=common.fsdp_rules()))
    mesh = shd.make_mesh(ml_collections.ConfigDict(dict(data=4, fsdp=2, tensor=1)))
    assert shd.batch_axes(rules) == ("data", "fsdp")
    with pytest.raises(ValueError, match=r"= 12 is not divisible by the data-parallel size 8"):
        shd.check_batch(12, mesh, rules)
    shd.check_batch(16, mesh, rules)


def test_global_batch_is_sharded_over_the_batch_axes():
    import numpy as np

    rules = ml_collections.ConfigDict(dict(rules=common.fsdp_rules()))
    mesh = shd.make_mesh(ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1)))
    batch = shd.global_batch({"x": np.arange(16).reshape(16, 1)}, mesh, rules)
    assert batch["x"].shape == (16, 1)
    assert len(batch["x"].addressable_shards) == jax.device_count()
    assert batch["x"].addressable_shards[1].data.shape == (2, 1)


def test_hybrid_mesh_needs_one_granule_per_dcn_way():
    """mesh.dcn_data must equal the processes (hosts) or TPU slices; the 2-process run with
    dcn_data=2 is tests/train/test_multiprocess.py."""
    with pytest.raises(ValueError, match=r"dcn_data = 2 must equal the number of processes"):
        shd.make_mesh(ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, dcn_data=2)))
    flat = shd.make_mesh(ml_collections.ConfigDict(dict(data=-1, fsdp=2, tensor=1, dcn_data=1)))
    assert dict(flat.shape) == {"data": 4, "fsdp": 2, "tensor": 1}


def test_process_rows_are_the_rows_of_the_process_devices():
    rules = ml_collections.ConfigDict(dict(rules=common.fsdp_rules()))
    mesh = shd.make_mesh(ml_collections.ConfigDict(dict(data=2, fsdp=2, tensor=2)))
    assert shd.process_rows(16, mesh, rules) == ((0, 16),)  # one process holds every row


def test_a_compile_lays_out_a_hybrid_mesh_with_runs_of_devices_as_hosts():
    """`vljax compile` (stand_in_granules): on one process's 8 devices, dcn_data=2 splits the
    data axis over two runs of 4 consecutive devices, as 2 processes x 4 devices hold it."""
    config = ml_collections.ConfigDict(dict(data=-1, fsdp=2, tensor=1, dcn_data=2))
    mesh = shd.make_mesh(config, stand_in_granules=True)
    assert dict(mesh.shape) == {"data": 4, "fsdp": 2, "tensor": 1}
    devices = jax.devices()
    assert set(mesh.devices[:2].flat) == set(devices[:4])  # host 0: the first half of data
    assert set(mesh.devices[2:].flat) == set(devices[4:])
    with pytest.raises(ValueError, match=r"dcn_data = 3 does not divide the 8 devices"):
        shd.make_mesh(ml_collections.ConfigDict(dict(data=-1, dcn_data=3)), stand_in_granules=True)
