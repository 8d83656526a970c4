"""Launchers: --dry-run prints the exact commands (shell-quoted like shlex.join), with the
VLJAX_* environment; a path with spaces and an override holding JSON survive every level of
quoting (srun's bash -c, the TPU workers' ssh --command)."""

import os
import runpy
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_ARGS = [
    "--config", "configs/demo.py", "--workdir", "runs/a dir/x", "--config.total_steps=5",
    '--config.evals={"shapes": {"type": "zeroshot", "key": "it\'s"}}',
]  # fmt: skip
NO_SLURM = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}


def run(cmd, env=None):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    return out.stdout.strip().splitlines()


def test_multiprocess_dry_run():
    lines = run(
        [sys.executable, "launch/multiprocess.py", "-n", "3", "--port", "4321", "--cpu-devices",
         "2", "--dry-run", "--", *TRAIN_ARGS]
    )  # fmt: skip
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert "VLJAX_COORDINATOR=127.0.0.1:4321 VLJAX_NUM_PROCESSES=3" in line
        assert f"VLJAX_PROCESS_ID={i} " in line
        assert "--xla_force_host_platform_device_count=2" in line
        assert line.endswith(shlex.join(["-m", "vljax.cli", "train", *TRAIN_ARGS]))


def test_multiprocess_keeps_the_other_xla_flags():
    env = {**os.environ, "XLA_FLAGS": "--xla_a=1 --xla_force_host_platform_device_count=8"}
    (line,) = run(
        [sys.executable, "launch/multiprocess.py", "-n", "1", "--cpu-devices", "4", "--dry-run",
         "--", *TRAIN_ARGS], env
    )  # fmt: skip
    flags = "--xla_a=1 --xla_force_host_platform_device_count=4"
    assert f"XLA_FLAGS={shlex.quote(flags)} " in line


def test_slurm_dry_run():
    task = (
        "VLJAX_COORDINATOR=FIRST_NODE:8476 VLJAX_NUM_PROCESSES=$SLURM_NTASKS "
        "VLJAX_PROCESS_ID=$SLURM_PROCID exec "
        + shlex.join([".venv/bin/vljax", "train", *TRAIN_ARGS])
    )
    expected = shlex.join(
        ["srun", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "bash", "-c", task]
    )
    assert run(["bash", "launch/slurm.sh", "--dry-run", *TRAIN_ARGS], NO_SLURM) == [expected]
    # The batch script hands one run to slurm.sh.
    assert run(["bash", "launch/slurm.sbatch", "--dry-run", *TRAIN_ARGS], NO_SLURM) == [expected]
    # What each task runs is the train args again, word for word.
    assert shlex.split(shlex.split(expected)[-1])[-len(TRAIN_ARGS) :] == TRAIN_ARGS


def test_slurm_array_task_dry_run(tmp_path):
    """Array task i runs line i + 1 of the tasks file `vljax sweep` writes."""
    tasks = tmp_path / "slurm tasks.txt"
    lines = [
        shlex.join([f"/r/run {i}/log.txt", "launch/slurm.sh", *TRAIN_ARGS, f"--config.seed={i}"])
        for i in range(2)
    ]
    tasks.write_text("\n".join(lines) + "\n")
    env = {**NO_SLURM, "SLURM_ARRAY_TASK_ID": "1"}
    (line,) = run(["bash", "launch/slurm.sbatch", "--dry-run", str(tasks)], env)
    assert shlex.split(shlex.split(line)[-1])[-len(TRAIN_ARGS) - 1 :] == [
        *TRAIN_ARGS,
        "--config.seed=1",
    ]


def test_tpu_pod_dry_run():
    tpu_vm = ["gcloud", "compute", "tpus", "tpu-vm"]
    ssh = [*tpu_vm, "ssh", "pod 1", "--zone", "zone1", "--worker=all", "--command"]
    lines = run(
        ["bash", "launch/tpu_pod.sh", "--dry-run", "--create", "v4-32", "--copy", "--install",
         "--delete", "pod 1", "zone1", "--", *TRAIN_ARGS]
    )  # fmt: skip
    worker_id = (
        "$(curl -s -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1"
        "/instance/attributes/agent-worker-number)"
    )
    remote = (
        "cd vljax && VLJAX_COORDINATOR=WORKER0_IP:8476 VLJAX_NUM_PROCESSES=NUM_WORKERS "
        f"VLJAX_PROCESS_ID={worker_id} exec "
        + shlex.join([".venv/bin/vljax", "train", *TRAIN_ARGS])
    )
    describe = shlex.join([*tpu_vm, "describe", "pod 1", "--zone", "zone1"])
    create = [*tpu_vm, "create", "pod 1", "--zone", "zone1", "--accelerator-type", "v4-32",
              "--version", "tpu-ubuntu2204-base"]  # fmt: skip
    ip = shlex.join([*tpu_vm, "describe", "pod 1", "--zone", "zone1", "--format",
                     "value(networkEndpoints[0].ipAddress)"])  # fmt: skip
    assert lines == [
        f"{describe} >/dev/null 2>&1 || {shlex.join(create)}",
        f"cd {shlex.quote(ROOT)} && git ls-files -z | tar czf /tmp/vljax-code.tgz --null -T -",
        shlex.join(
            [
                *tpu_vm,
                "scp",
                "/tmp/vljax-code.tgz",
                "pod 1:vljax-code.tgz",
                "--zone",
                "zone1",
                "--worker=all",
            ]
        ),  # fmt: skip
        shlex.join([*ssh, "mkdir -p vljax && tar xzf vljax-code.tgz -C vljax"]),
        shlex.join(
            [*ssh, "cd vljax && python3 -m venv .venv && .venv/bin/pip install -q -e . 'jax[tpu]'"]
        ),  # fmt: skip
        f"# WORKER0_IP=$({ip})",
        "# NUM_WORKERS: the count of networkEndpoints[].ipAddress",
        shlex.join([*ssh, remote]),
        shlex.join([*tpu_vm, "delete", "pod 1", "--zone", "zone1", "--quiet"]),
    ]
    # On each worker, the remote command's words are the train args.
    assert shlex.split(shlex.split(lines[-2])[-1])[-len(TRAIN_ARGS) :] == TRAIN_ARGS


def test_xpk_dry_run():
    """An XPK workload on 2 slices: the create line (mesh.dcn_data=2 added to the train args,
    the whole train command one --command word), the wait, list and delete; the workload
    name is checked before xpk sees it."""
    xpk = ["bash", "launch/xpk.sh", "--dry-run", "--cluster", "gke 1", "--project", "p1"]
    lines = run(
        [*xpk, "create", "run-1", "--tpu-type", "v5p-256", "--num-slices", "2", "--docker-image",
         "gcr.io/p1/vljax:1", "--max-restarts", "3", "--wait", "--", *TRAIN_ARGS]
    )  # fmt: skip
    where = ["--cluster", "gke 1", "--project", "p1"]
    train = shlex.join(["vljax", "train", *TRAIN_ARGS, "--config.mesh.dcn_data=2"])
    create = ["xpk", "workload", "create", *where, "--workload", "run-1", "--tpu-type", "v5p-256",
              "--num-slices", "2", "--docker-image", "gcr.io/p1/vljax:1", "--max-restarts", "3",
              "--command", f"exec {train}"]  # fmt: skip
    wait = ["xpk", "workload", "list", *where, "--wait-for-job-completion", "run-1"]
    assert lines == [shlex.join(create), shlex.join(wait)]
    # In the pod, the command's words are the train args (and the slices' dcn_data).
    assert shlex.split(shlex.split(lines[0])[-1])[3:] == [*TRAIN_ARGS, "--config.mesh.dcn_data=2"]

    # Without an image, XPK layers this checkout onto its base image; the command installs it.
    # A dcn_data in the train args is left as it is.
    dcn = "--config.mesh.dcn_data=2"
    (line,) = run(
        [*xpk, "create", "run-1", "--tpu-type", "v4-8", "--num-slices", "2", "--", dcn,
         *TRAIN_ARGS]
    )  # fmt: skip
    words = shlex.split(line)
    assert words[words.index("--script-dir") + 1] == ROOT
    assert words[-1] == "python3 -m pip install -q -e . 'jax[tpu]' && exec " + shlex.join(
        ["python3", "-m", "vljax.cli", "train", dcn, *TRAIN_ARGS]
    )
    assert run([*xpk, "list"]) == [shlex.join(["xpk", "workload", "list", *where])]
    assert run([*xpk, "delete", "run-1"]) == [
        shlex.join(["xpk", "workload", "delete", *where, "--workload", "run-1", "--force"])
    ]
    bad = subprocess.run([*xpk, "delete", "Run_1"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "at most 40 of a-z, 0-9 and '-'" in bad.stderr


def test_pip_sources_become_uv_options_once_each():
    listing = (
        ":env:.find-links='/opt/wheels'\n"
        "global.cert='/etc/ssl/certs/ca-certificates.crt'\n"
        "global.constraint='/etc/pip/constraints.txt'\n"
        "global.extra-index-url='file:///a/simple file:///b/simple'\n"
        "global.find-links='/opt/wheels'\n"
    )
    uv_arguments = runpy.run_path(os.path.join(ROOT, "launch/with_pip_sources.py"))["uv_arguments"]
    assert uv_arguments(listing) == [
        "--find-links", "/opt/wheels", "--constraint", "/etc/pip/constraints.txt",
        "--extra-index-url", "file:///a/simple", "--extra-index-url", "file:///b/simple",
        "--index-strategy", "unsafe-best-match",
    ]  # fmt: skip
    assert uv_arguments(":env:.find-links='/w'\n") == ["--find-links", "/w"]
    assert uv_arguments("") == []


def test_with_pip_sources_runs_the_command_with_pips_environment_sources():
    # PIP_CONFIG_FILE=/dev/null: pip reads no config file, only the PIP_* variables.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "/x /y"}
    assert run([sys.executable, "launch/with_pip_sources.py", "/bin/echo", "uv"], env) == [
        "uv --find-links /x --find-links /y"
    ]
