"""`vljax sweep`: expansion (product, zip_, names), skipping complete runs and resuming
interrupted ones, each launcher's --dry-run (quoting), --parallel, failures reported without
stopping the others, a real local sweep of 2 tiny runs and its summary."""

import json
import os
import re
import shlex
import sys
import time

import pytest

from tests.train.tiny import tiny_overrides
from vljax import cli, sweep
from vljax.errors import EXIT_SWEEP_RUN_FAILED, ConfigError
from vljax.sweep import execute, launchers
from vljax.sweep.spec import expand, load_sweep, override_text
from vljax.sweep.summary import markdown_table, read_run, summarize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVALS = {"shapes": {"type": "zeroshot", "dataset": "shapes:zeroshot", "key": "shapes"}}


def write_sweep(folder, entries, base=None, name="sample sweep.py") -> str:
    """A sweep file: the demo with `base` overrides (command-line text), runs `entries`."""
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(
            "from configs import demo\n"
            "from vljax.config import apply_override\n\n"
            f"BASE = {dict(base or {})!r}\n\n\n"
            "def get_config(arg=None):\n"
            "    c = demo.get_config()\n"
            "    for key, text in BASE.items():\n"
            "        apply_override(c, key, text)\n"
            "    return c\n\n\n"
            f"def get_sweep():\n    return {entries!r}\n"
        )
    return path


# ---------------------------------------------------------------------------------------
# Expansion and names


def test_product_and_zip():
    runs = sweep.product({"loss.kind": ["softmax", "sigmoid"], "seed": [1, 2]})
    assert runs == [
        {"loss.kind": "softmax", "seed": 1},
        {"loss.kind": "softmax", "seed": 2},
        {"loss.kind": "sigmoid", "seed": 1},
        {"loss.kind": "sigmoid", "seed": 2},
    ]
    impls = [{"loss.impl": "ring"}, {"loss.impl": "grouped", "loss.group_size": 1}]
    assert sweep.product({"seed": [0]}, impls) == [
        {"seed": 0, "loss.impl": "ring"},
        {"seed": 0, "loss.impl": "grouped", "loss.group_size": 1},
    ]
    assert sweep.zip_({"batch_size": [64, 128], "total_steps": [800, 400]}) == [
        {"batch_size": 64, "total_steps": 800},
        {"batch_size": 128, "total_steps": 400},
    ]
    assert sweep.zip_(impls, {"seed": [1, 2]})[1] == {**impls[1], "seed": 2}
    with pytest.raises(ConfigError, match="different lengths"):
        sweep.zip_({"seed": [1, 2]}, {"batch_size": [64]})
    with pytest.raises(ConfigError, match="one length"):
        sweep.zip_({"seed": [1, 2], "batch_size": [64]})
    with pytest.raises(ConfigError, match="set twice"):
        sweep.product({"seed": [1]}, [{"seed": 2}])
    with pytest.raises(ConfigError, match="needs a list"):
        sweep.product({"seed": 1})


def test_override_text_reads_back():
    assert override_text(True) == "true" and override_text(None) == "none"
    assert override_text(0.001) == "0.001" and override_text(64) == "64"
    assert json.loads(override_text(EVALS)) == EVALS


def test_names_readable_stable_unique(tmp_path):
    entries = [
        {"loss.kind": "sigmoid", "seed": 1},
        {"model.image.width": 64, "model.text.width": 32},  # same last part: full keys
        {"evals": EVALS},  # a dict: readable prefix + hash
        {"data.train.dataset": "a b"},  # unsafe characters...
        {"data.train.dataset": "a_b"},  # ...made safe, the two would collide: hashes
        {sweep.RECIPE_KEY: "configs/coca.py:demo", "seed": 2},
        {sweep.NAME_KEY: "mine", "seed": 3},
    ]
    runs = expand(entries, "configs/demo.py", str(tmp_path))
    names = [r.name for r in runs]
    assert names[0] == "kind=sigmoid,seed=1"
    assert names[1] == "model.image.width=64,model.text.width=32"
    assert names[2].startswith("evals=") and len(names[2].rsplit("-", 1)[1]) == 8
    assert names[3] != names[3 + 1] and names[3].startswith("dataset=a_b-")
    assert names[5] == "coca-demo,seed=2" and runs[5].recipe == "configs/coca.py:demo"
    assert names[6] == "mine"
    assert len(set(names)) == len(names)
    assert all(n == n.strip() and "/" not in n and " " not in n for n in names)
    # Stable: the same entries give the same names (a rerun finds its workdirs).
    assert [r.name for r in expand(entries, "configs/demo.py", "/elsewhere")] == names
    assert runs[0].workdir == os.path.join(str(tmp_path), names[0])
    assert runs[0].train_args()[-2:] == ["--config.loss.kind=sigmoid", "--config.seed=1"]
    with pytest.raises(ConfigError, match="same run"):
        expand([{"seed": 1}, {"seed": 1}], "x.py", "/r")
    with pytest.raises(ConfigError, match="not filesystem-safe"):
        expand([{sweep.NAME_KEY: "a/b"}], "x.py", "/r")
    with pytest.raises(ConfigError, match="no --config. prefix"):
        expand([{"--config.seed": 1}], "x.py", "/r")


def test_shipped_sweep_files(tmp_path, monkeypatch):
    """configs/ablations/*.py expand and every run's config builds."""
    monkeypatch.chdir(REPO)
    loss = load_sweep("configs/ablations/loss.py", str(tmp_path))
    assert len(loss) == 6 and {r.build_config().loss.impl for r in loss} == {
        "all_gather", "ring", "grouped"
    }  # fmt: skip
    batch = load_sweep("configs/ablations/batch_size.py", str(tmp_path))
    seen = {c.batch_size * c.total_steps for c in (r.build_config() for r in batch)}
    assert len(batch) == 3 and seen == {128 * 400}
    methods = load_sweep("configs/ablations/methods.py", str(tmp_path))
    assert {"clip", "siglip", "coca"} <= {r.name for r in methods}


# ---------------------------------------------------------------------------------------
# Skipping complete runs, resuming interrupted ones (fake run folders)


def fake_run(workdir, steps, total, report=True, evals=None):
    os.makedirs(os.path.join(workdir, "checkpoints"), exist_ok=True)
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        for step in range(10, steps + 1, 10):
            f.write(json.dumps({"step": step, "loss": 5.0 - step / total, "images_per_s": 50.0}))
            f.write("\n")
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump({"total_steps": total, "batch_size": 16}, f)
    if evals is not None:
        with open(os.path.join(workdir, "eval.json"), "w") as f:
            json.dump({"step": steps, **evals}, f)
    if report:
        open(os.path.join(workdir, "report.md"), "w").close()


def test_skip_complete_resume_interrupted(tmp_path, capsys):
    path = write_sweep(tmp_path, [{"total_steps": 20}, {"total_steps": 30}, {"total_steps": 40}])
    root = str(tmp_path / "root")
    runs = load_sweep(path, root)
    fake_run(runs[0].workdir, 20, 20)  # complete
    fake_run(runs[1].workdir, 20, 30, report=False)  # interrupted at step 20 of 30
    os.makedirs(runs[2].workdir)  # refused last time: only the sweep's own files
    for name in ("log.txt", "sweep_run.json", "sweep_attempts.jsonl"):
        open(os.path.join(runs[2].workdir, name), "w").close()
    plan = execute.plan_runs(runs)
    assert plan.complete == [runs[0]]
    assert [(r.name, s) for r, s in plan.to_run] == [
        (runs[1].name, "interrupted"),
        (runs[2].name, "new"),
    ]
    assert execute.run_sweep(plan, root, launchers.LaunchOptions(), dry_run=True) == 0
    out = capsys.readouterr().out
    assert f"# {runs[0].name}: complete, skipped" in out
    assert f"# {runs[1].name}: interrupted: resumes from its checkpoint" in out
    assert out.count("vljax.cli train") == 2  # the same command resumes: the trainer does
    assert sorted(os.listdir(root)) == sorted(r.name for r in runs)  # a dry run writes nothing


def test_summary_table_bolds_the_best(tmp_path):
    for name, loss_at, recall in (("a", 0.2, 0.5), ("b", 0.1, 0.7)):
        workdir = tmp_path / name
        fake_run(str(workdir), 20, 20, evals={"retrieval/shapes/img2txt_r1": recall})
        with open(workdir / "sweep_run.json", "w") as f:
            json.dump({"overrides": {"seed": name}}, f)
        with open(workdir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": 20, "loss": loss_at}) + "\n")
    runs = [read_run(str(tmp_path / n)) for n in ("a", "b")]
    assert runs[0]["metrics"]["train_s"] == pytest.approx(20 * 16 / 50.0)
    table = markdown_table(runs)
    row_a, row_b = table.splitlines()[2:]
    assert "| 0.2 |" in row_a and "**0.1**" in row_b  # final loss: lower is better
    assert "| 0.5 |" in row_a and "**0.7**" in row_b  # recall: higher is better


# ---------------------------------------------------------------------------------------
# Every launcher's dry run, with a path holding spaces and an override holding JSON


def test_dry_run_each_launcher(tmp_path, capsys):
    folder = tmp_path / "my sweeps"
    folder.mkdir()
    path = write_sweep(str(folder), [{"evals": EVALS}, {"seed": 2}])
    root = str(folder / "out root")
    argv = ["sweep", "--config", path, "--workdir-root", root, "--dry-run"]
    runs = load_sweep(path, root)
    json_arg = "--config.evals=" + json.dumps(EVALS, sort_keys=True)
    assert runs[0].train_args() == ["--config", path, "--workdir", runs[0].workdir, json_arg]
    launch = os.path.join(REPO, "launch")

    def lines(*extra):
        assert cli.main(argv + list(extra)) == 0
        return capsys.readouterr().out.splitlines()

    def logged(run, command):
        log = shlex.quote(os.path.join(run.workdir, "log.txt"))
        return f"mkdir -p {shlex.quote(run.workdir)} && {shlex.join(command)} >>{log} 2>&1"

    train = [sys.executable, "-m", "vljax.cli", "train"]
    assert lines() == [
        f"# {runs[0].name}: new",
        logged(runs[0], train + runs[0].train_args()),
        f"# {runs[1].name}: new",
        logged(runs[1], train + runs[1].train_args()),
    ]
    mp = [sys.executable, os.path.join(launch, "multiprocess.py"), "-n", "2", "--cpu-devices", "4"]
    out = lines("--launcher", "multiprocess", "--cpu-devices", "4")
    assert out[1] == logged(runs[0], mp + ["--", *runs[0].train_args()])
    # Quoting round trip: the shell gives the trainer exactly these words.
    assert shlex.split(out[1])[-5 - 2 : -2] == runs[0].train_args()

    tasks = os.path.join(root, "slurm_tasks.txt")
    slurm_sh = os.path.join(launch, "slurm.sh")
    assert lines("--launcher", "slurm", "--parallel", "2") == [
        f"# 2 array tasks; line i of {tasks} is task i",
        f"mkdir -p {shlex.quote(root)}",
        f"cat > {shlex.quote(tasks)} <<'VLJAX_TASKS'",
        *[
            shlex.join([os.path.join(r.workdir, "log.txt"), slurm_sh, *r.train_args()])
            for r in runs
        ],
        "VLJAX_TASKS",
        shlex.join(
            [
                "sbatch",
                "--array=0-1%2",
                "--job-name=vljax-sweep",
                f"--output={root}/slurm-%A_%a.out",
                f"--chdir={REPO}",
                os.path.join(launch, "slurm.sbatch"),
                tasks,
            ]
        ),  # fmt: skip
    ]
    tpu = ["bash", os.path.join(launch, "tpu_pod.sh")]
    out = lines("--launcher", "tpu", "--tpu", "pod1", "--zone", "z1", "--tpu-type", "v4-8",
                "--tpu-delete")  # fmt: skip
    tpu_runs = runs  # TPU: the paths as given (here absolute already)
    assert out == [
        shlex.join(tpu + ["--create", "v4-8", "--copy", "--install", "pod1", "z1"]),
        f"# {tpu_runs[0].name}: new",
        logged(tpu_runs[0], tpu + ["pod1", "z1", "--", *tpu_runs[0].train_args()]),
        f"# {tpu_runs[1].name}: new",
        logged(tpu_runs[1], tpu + ["pod1", "z1", "--", *tpu_runs[1].train_args()]),
        shlex.join(tpu + ["--delete", "pod1", "z1"]),
    ]
    assert not os.path.exists(root)


def test_dry_run_xpk(tmp_path, capsys, monkeypatch):
    """--launcher xpk: one launch/xpk.sh workload per run (relative paths kept as given: the
    pods see the checkout and ROOT at their own paths), names XPK accepts, and the options of
    other launchers refused."""
    monkeypatch.chdir(tmp_path)
    os.mkdir("my sweeps")
    path = os.path.relpath(write_sweep("my sweeps", [{"evals": EVALS}, {"seed": 2}]))
    root = "out root/loss"
    runs = load_sweep(path, root, absolute=False)
    argv = ["sweep", "--config", path, "--workdir-root", root, "--launcher", "xpk", "--dry-run"]
    xpk_options = ["--cluster", "gke1", "--zone", "z1", "--tpu-type", "v5p-256", "--num-slices",
                   "2", "--docker-image", "gcr.io/p/vljax:1"]  # fmt: skip
    assert cli.main(argv + xpk_options) == 0
    names = [launchers.xpk_workload_name(r) for r in runs]
    xpk = ["bash", os.path.join(REPO, "launch", "xpk.sh"), "--cluster", "gke1", "--zone", "z1"]
    lines = []
    for run, name in zip(runs, names, strict=True):
        image = ["--docker-image", "gcr.io/p/vljax:1"]
        command = [*xpk, "create", name, "--tpu-type", "v5p-256", "--num-slices", "2", *image,
                   "--wait", "--", *run.train_args()]  # fmt: skip
        log = shlex.quote(os.path.join(run.workdir, "log.txt"))
        lines += [
            f"# {run.name}: new",
            f"mkdir -p {shlex.quote(run.workdir)} && {shlex.join(command)} >>{log} 2>&1",
        ]
    assert capsys.readouterr().out.splitlines() == lines
    assert runs[0].train_args()[:4] == ["--config", path, "--workdir", runs[0].workdir]
    for name in names:
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 40, name
    assert len(set(names)) == 2
    assert cli.main([*argv[:-3], "--launcher", "tpu", "--tpu", "t", "--cluster", "gke1"]) == 2
    assert "--cluster: not options of --launcher tpu" in capsys.readouterr().err
    assert cli.main(argv + ["--cluster", "gke1"]) == 2
    assert "needs --cluster NAME (the GKE cluster) and --tpu-type" in capsys.readouterr().err


def test_dry_run_refuses_bad_runs_naming_the_fix(tmp_path, capsys):
    path = write_sweep(str(tmp_path), [{"seed": 1}, {"model.image.dpeth": 2}])
    code = cli.main(["sweep", "--config", path, "--workdir-root", str(tmp_path), "--dry-run"])
    out = capsys.readouterr().out
    assert code == EXIT_SWEEP_RUN_FAILED
    assert "NOT RUN, its config is refused" in out and "did you mean 'depth'" in out
    assert out.count("vljax.cli train") == 1
    with pytest.raises(ConfigError, match="its runs are: dpeth=2 seed=1"):
        execute.select(load_sweep(path, str(tmp_path)), ["nope"])


# ---------------------------------------------------------------------------------------
# Running: --parallel, failures, a real sweep of tiny runs


def test_parallel_and_failures_do_not_stop_the_others(tmp_path, monkeypatch, capsys):
    """Four 1 s runs with --parallel 4 take about 1 s (in a row: 4); a failing one is
    reported at the end with its log, after the others finished."""
    path = write_sweep(str(tmp_path), [{"seed": s} for s in range(4)])
    root = str(tmp_path / "root")

    def fake_command(run, options):
        code = 3 if run.name == "seed=1" else 0
        script = f"import time; print('run {run.name}'); time.sleep(1); raise SystemExit({code})"
        return [sys.executable, "-c", script]

    monkeypatch.setattr(launchers, "run_command", fake_command)
    start = time.perf_counter()
    argv = ["sweep", "--config", path, "--workdir-root", root, "--parallel", "4"]
    assert cli.main(argv) == EXIT_SWEEP_RUN_FAILED
    assert time.perf_counter() - start < 3
    err = capsys.readouterr().err
    log = os.path.join(root, "seed=1", "log.txt")
    assert f"seed=1: exit 3; log: {log}" in err and "| run seed=1" in err
    for s in (0, 2, 3):
        with open(os.path.join(root, f"seed={s}", "log.txt")) as f:
            assert f"run seed={s}" in f.read()


def test_real_local_sweep(tmp_path, capsys):
    """2 tiny runs (differing only in seed: the second reuses the first's compiled step
    from the session's XLA cache) and a refused one; then the summary. (A run the trainer
    fails is test_parallel_and_failures_do_not_stop_the_others': each costs a jax start.)
    Two runs are enough for all it checks (a best value to bold among several runs, the
    rerun skipping complete ones): each run is a trainer process, ~15 s on 2 cores."""
    tiny = dict(tiny_overrides(total_steps=3, log_every_steps=1))
    path = write_sweep(
        str(tmp_path),
        [{"seed": 1}, {"seed": 2}, {"seed": 4, "model.image.dpeth": 2}],
        base=tiny,
    )
    root = str(tmp_path / "sweep root")
    argv = ["sweep", "--config", path, "--workdir-root", root]
    assert cli.main(argv) == EXIT_SWEEP_RUN_FAILED
    captured = capsys.readouterr()
    assert "2 new, 1 refused" in captured.out
    refused_log = os.path.join(root, "seed=4,dpeth=2", "log.txt")
    assert "did you mean 'depth'" in captured.err and f"log: {refused_log}" in captured.err
    for seed in (1, 2):
        assert os.path.exists(os.path.join(root, f"seed={seed}", "report.md"))

    # Rerun: the complete runs are skipped (no trainer starts).
    assert cli.main(argv + ["--only", "seed=1", "seed=2"]) == 0
    assert "2 complete (skipped), 0 to resume, 0 new" in capsys.readouterr().out

    assert cli.main(["sweep", "summarize", root]) == 0
    with open(os.path.join(root, "summary.md")) as f:
        table = f.read()
    assert "| `seed=2` | complete | 2 |  |" in table
    assert "| `seed=4,dpeth=2` | refused | 4 | 2 |" in table
    assert table.count("**") == 4  # the best final loss and images/s
    with open(os.path.join(root, "summary.csv")) as f:
        header, *rows = f.read().splitlines()
    assert header.startswith("run,status,seed,model.image.dpeth,") and len(rows) == 3
    assert "final_loss" in header and rows[0].startswith("seed=1,complete,1,,3,")
    for plot in ("metrics.png", "loss_curves.png"):
        assert os.path.getsize(os.path.join(root, "plots", plot)) > 1000
    assert summarize(root).endswith("summary.md")
