"""Joining a multi-process job: flags over VLJAX_* variables, clear errors, cluster detection.
The real 2-process run is tests/train/test_multiprocess.py."""

import pytest

from vljax import cli, distributed
from vljax.errors import ConfigError

ENV = {"VLJAX_COORDINATOR": "10.0.0.1:8476", "VLJAX_NUM_PROCESSES": "4", "VLJAX_PROCESS_ID": "2"}
SLURM = {
    "SLURM_JOB_ID": "7",
    "SLURM_STEP_NODELIST": "n[1-2]",
    "SLURM_NTASKS": "2",
    "SLURM_PROCID": "1",
    "SLURM_LOCALID": "0",
}


def test_flags_win_over_the_launchers_variables():
    c = distributed.explicit_coordinator(environ=ENV)
    assert c == distributed.Coordinator("10.0.0.1:8476", 4, 2)
    c = distributed.explicit_coordinator("host:1234", None, 3, environ=ENV)
    assert c == distributed.Coordinator("host:1234", 4, 3)
    assert distributed.explicit_coordinator(environ={}) == distributed.Coordinator(None, None, None)


@pytest.mark.parametrize(
    "coordinator, message",
    [
        (distributed.Coordinator("h:1", 2, None), "missing --process-id"),
        (distributed.Coordinator(None, 2, 0), "missing --coordinator-address"),
        (distributed.Coordinator("h:1", 2, 2), r"--process-id = 2 must be in \[0, 2\)"),
        (distributed.Coordinator("h", 2, 0), "needs a port: HOST:PORT, e.g. h:8476"),
        (distributed.Coordinator(None, 0, None), "--num-processes = 0 must be at least 1"),
    ],
)
def test_a_partial_or_wrong_job_is_refused_naming_the_fix(coordinator, message):
    with pytest.raises(ConfigError, match=message):
        distributed.check_coordinator(coordinator)


def test_one_process_needs_nothing_else():
    distributed.check_coordinator(distributed.Coordinator(None, 1, None))
    distributed.check_coordinator(distributed.Coordinator(None, None, None))


def test_clusters_that_jax_configures_itself():
    assert distributed.detected_cluster(SLURM) == "slurm"
    assert distributed.detected_cluster({**SLURM, "SLURM_NTASKS": "1"}) is None  # one task
    batch_script = {k: v for k, v in SLURM.items() if k != "SLURM_STEP_NODELIST"}
    assert distributed.detected_cluster(batch_script) is None  # sbatch's script, not srun
    assert distributed.detected_cluster({"TPU_WORKER_HOSTNAMES": "w0,w1"}) == "tpu"
    assert distributed.detected_cluster({"MEGASCALE_COORDINATOR_ADDRESS": "w0:8080"}) == "tpu"
    assert distributed.detected_cluster({}) is None  # this machine: one process


def test_cli_refuses_a_partial_job_before_any_work(capsys):
    argv = ["train", "--config", "configs/demo.py", "--workdir", "/nonexistent/x"]
    assert cli.main([*argv, "--num-processes", "2", "--process-id", "0"]) == ConfigError.exit_code
    assert "missing --coordinator-address" in capsys.readouterr().err
