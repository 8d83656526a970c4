"""`vljax compile`: the ViT-B/16 train step compiled ahead of time for 64 fake CPU devices from
abstract arrays, FSDP against data-parallel, and the errors that name the fix.

`vljax compile --devices 64` compiles in a process of its own (vljax/train/compile_cli.py);
a B/16 compile for 64 devices costs about 10 s here, so the data-parallel layout is only
sharded (--no-compile), on this process's own 8 devices (--topology attached: no second
process): every device holds the whole state on any device count."""

import json

from vljax.cli import main

B16 = ["compile", "--config", "configs/clip_vit_b16.py", "--config.batch_size=64"]
KEYS = (
    "devices",
    "mesh",
    "param_bytes_per_device",
    "opt_state_bytes_per_device",
    "temp_bytes_per_device",
    "argument_bytes_per_device",
    "flops_per_step",
    "collectives",
)


def test_fsdp_holds_one_64th_of_the_data_parallel_state_per_device(tmp_path):
    fsdp_json, dp_json = tmp_path / "fsdp.json", tmp_path / "dp.json"
    assert main([*B16, "--devices", "64", "--json", str(fsdp_json)]) == 0
    dp = ["--config.mesh.fsdp=1", "--config.mesh.data=-1", "--no-compile"]
    assert main([*B16, *dp, "--topology", "attached", "--json", str(dp_json)]) == 0
    fsdp, data = json.loads(fsdp_json.read_text()), json.loads(dp_json.read_text())
    for key in KEYS:
        assert key in fsdp and key in data, key
    assert fsdp["devices"] == 64 and data["devices"] == 8
    assert fsdp["mesh"] == {"data": 1, "fsdp": 64, "tensor": 1}
    assert data["mesh"] == {"data": 8, "fsdp": 1, "tensor": 1}
    n_params = fsdp["params"]
    assert 1.4e8 < n_params < 1.6e8, n_params  # CLIP B/16 has ~150M

    # Data-parallel: every device holds all params (fp32) and both Adam moments.
    assert data["param_bytes_per_device"] == 4 * n_params
    assert 2 * 4 * n_params <= data["opt_state_bytes_per_device"] < 2 * 4 * n_params * 1.01
    # FSDP: 1/64 of that, plus the small leaves that are not split (about 4% more here).
    for key in ("param_bytes_per_device", "opt_state_bytes_per_device"):
        ratio = fsdp[key] * 64 / data[key]
        assert 1.0 <= ratio < 1.1, (key, ratio)
    # The compiled step's arguments: the state split 64 ways plus one example per device.
    assert fsdp["argument_bytes_per_device"] < 3 * 4 * n_params / 64 * 1.3
    assert fsdp["temp_bytes_per_device"] > 0
    # The weights are gathered (FSDP), every kind is reported.
    assert set(fsdp["collectives"]) == {
        "all-gather",
        "reduce-scatter",
        "all-reduce",
        "all-to-all",
        "collective-permute",
    }
    assert fsdp["collectives"]["all-gather"] > 0
    # Forward about 41 GFLOPs per example (both towers), backward twice that, remat's second
    # forward: ~150 GFLOPs. XLA's count of the scanned program sees one layer per tower.
    per_example = fsdp["flops_per_step"] / 64
    assert 1.2e11 < per_example < 1.8e11, per_example
    assert data["temp_bytes_per_device"] is None and data["flops_per_step"] is None


def test_a_mesh_that_does_not_fit_the_devices_names_the_fix(capsys):
    """On this process's own 8 devices (--topology attached), so no process is started."""
    mesh = ["--config.mesh.fsdp=3", "--config.mesh.data=-1"]
    assert main([*B16, *mesh, "--topology", "attached"]) == 2
    err = capsys.readouterr().err
    assert "8 devices are not divisible" in err and "change config.mesh" in err, err
    assert "another --devices" in err, err


def test_an_unknown_config_key_names_the_fix(capsys):
    """Refused before any process starts or jax compiles anything."""
    assert main([*B16, "--devices", "64", "--config.mesh.fsdq=2"]) == 2
    assert "did you mean 'fsdp'" in capsys.readouterr().err


def test_a_hybrid_mesh_compiles_with_runs_of_devices_as_hosts(tmp_path):
    """mesh.dcn_data=2 on one process (a training run would refuse it: one host): sharded on
    this process's 8 devices, two runs of 4 standing in for the hosts."""
    out = tmp_path / "hybrid.json"
    mesh = ["--config.mesh.dcn_data=2", "--config.mesh.data=2", "--config.mesh.fsdp=-1"]
    assert main([*B16, *mesh, "--no-compile", "--topology", "attached", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["devices"] == 8 and report["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1}
