"""User errors: one or a few lines naming the problem and the fix, a documented exit code, no
traceback (VLJAX_DEBUG=1 shows it), and no work done before the refusal."""

import json
import os
import signal

import pytest

from tests.train.tiny import tiny_argv
from vljax import cli
from vljax.errors import EXIT_CONFIG, EXIT_LOCKED
from vljax.train import loop
from vljax.train.workdir_lock import LOCK_FILE, WorkdirLock


def run(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def syntax_error_config(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def get_config(arg=None):\n    return {'a': 1\n")
    return str(path)


@pytest.mark.parametrize(
    "changes,expect",
    [
        ({"batch_size": "abc"}, "--config.batch_size='abc': expected an integer"),
        ({"optimizer.learning_rate": "abc"}, "expected a number"),
        ({"model.image.stem": "conv-pool"}, "--config.model.image.stem=conv_pool"),
        ({"model.activaton": "gelu"}, "did you mean 'activation'"),
        ({"batch_size": "12"}, "not divisible by the data-parallel size 8"),
        ({"loss.kind": "sigmoid", "model.bias_init": "none"}, "needs a learnable bias"),
        ({"mesh.data": "4", "mesh.fsdp": "2"}, "set optimizer.flatten=False"),
    ],
)
def test_bad_values_are_refused_before_any_work(tmp_path, capsys, changes, expect):
    argv = tiny_argv(tmp_path / "w") + [f"--config.{k}={v}" for k, v in changes.items()]
    code, text = run(argv, capsys)
    assert code == EXIT_CONFIG, text
    assert expect in text and "Traceback" not in text
    # Refused before the tokenizer was trained or the config written.
    left = set(os.listdir(tmp_path / "w")) if (tmp_path / "w").exists() else set()
    assert left <= {LOCK_FILE, "checkpoints"}, left


def test_a_procedural_dataset_refuses_images_too_small_to_draw(tmp_path, capsys):
    """Found when the data source is built (after the tokenizer): a config error naming the
    fix, not a traceback."""
    code, text = run(tiny_argv(tmp_path / "w") + ["--config.model.image.image_size=16"], capsys)
    assert code == EXIT_CONFIG, text
    assert "--config.model.image.image_size=32 or more" in text and "Traceback" not in text


def test_config_file_errors(tmp_path, capsys, syntax_error_config):
    code, text = run(["train", "--config", syntax_error_config, "--workdir", "w"], capsys)
    assert code == EXIT_CONFIG and "broken.py:2: syntax error" in text
    assert "Traceback" not in text
    code, text = run(["train", "--config", "configs/demo.py:bogus", "--workdir", "w"], capsys)
    assert code == EXIT_CONFIG and "expected no arg, sigmoid, clip, siglip or quickstart" in text
    assert "Traceback" not in text
    code, text = run(["train", "--config", "configs/nope.py", "--workdir", "w"], capsys)
    assert code == EXIT_CONFIG and "does not exist" in text


def test_debug_env_shows_the_traceback(capsys, monkeypatch, syntax_error_config):
    monkeypatch.setenv("VLJAX_DEBUG", "1")
    code, text = run(["train", "--config", syntax_error_config, "--workdir", "w"], capsys)
    assert code == EXIT_CONFIG and "Traceback" in text


def test_a_recipe_outside_the_repository_imports_the_recipes(tmp_path):
    """~/exp/my_recipe.py doing `from configs import demo`, run from the repository root."""
    from vljax.config import build_config

    path = tmp_path / "exp" / "my_recipe.py"
    path.parent.mkdir()
    path.write_text(
        "from configs import demo\n\n"
        "def get_config(arg=None):\n"
        "    c = demo.get_config()\n"
        "    c.total_steps = 7\n"
        "    return c\n"
    )
    assert build_config(str(path)).total_steps == 7


def test_a_second_trainer_is_refused_with_the_holder(tmp_path, capsys):
    workdir = tmp_path / "w"
    workdir.mkdir()
    with WorkdirLock(str(workdir)):
        code, text = run(tiny_argv(workdir), capsys)
    assert code == EXIT_LOCKED and "Traceback" not in text
    assert f"PID {os.getpid()}" in text and "in use by another trainer" in text
    assert os.listdir(workdir) == [LOCK_FILE]  # nothing else touched


def test_a_lock_left_by_a_dead_trainer_is_taken_over(tmp_path, capsys):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": "h1", "pid": 4242, "since": 0}))
    with WorkdirLock(str(tmp_path)):
        text = capsys.readouterr().out
        assert "Taking over" in text and "host h1, PID 4242" in text
    with WorkdirLock(str(tmp_path)):  # released cleanly: nothing to report
        assert "Taking over" not in capsys.readouterr().out


def test_a_config_left_by_a_failed_first_run_does_not_block_the_next(tmp_path, monkeypatch, capsys):
    """config.json without checkpoints (written by a run that died early, before this change,
    or by hand): the model check is skipped; only checkpoints hold a workdir to a model."""
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps({"model": {"embed_dim": 999}}))

    def reached(*args):
        raise KeyboardInterrupt  # the point after the checks; stop the run here

    monkeypatch.setattr(loop, "ensure_tokenizer", reached)
    code, text = run(tiny_argv(workdir), capsys)
    assert "different model" not in text
    assert code == 130 and "interrupted" in text and "Traceback" not in text


def test_a_second_ctrl_c_aborts_at_once():
    stop = loop.StopRequest()
    try:
        signal.raise_signal(signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    finally:
        stop.restore()
