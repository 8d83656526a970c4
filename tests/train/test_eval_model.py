"""`vljax eval --model`: a vljax run and an exported Hugging Face folder scored by one command,
each equal to the run's own eval, in one markdown table (and JSON)."""

import dataclasses
import json

import jax
import pytest

from tests.export.helpers import tiny_config
from tests.random_params import random_variables
from tests.train.tiny import tiny_evals
from vljax import cli
from vljax.data.tokenizer import Tokenizer
from vljax.errors import EXIT_DATA, ConfigError
from vljax.evals.run import run_evals
from vljax.export.hf_export import export_params
from vljax.inference import load_hf_encoder
from vljax.methods import clip


def random_params(config, seed=0):
    """Random params of the config's shapes (tests/random_params.py) without the patch
    embedding's bias, so that the export imports exactly."""
    model = clip.build_model(config.model)
    params = random_variables(model, clip.example_batch(config.model), seed=seed)["params"]
    no_bias = lambda path, x: 0 * x if "embedding']['bias" in jax.tree_util.keystr(path) else x
    return jax.tree_util.tree_map_with_path(no_bias, params)


def write_evals(path, evals):
    body = f"    return {{'evals': json.loads({evals!r})}}\n"
    path.write_text("import json\n\n\ndef get_config(arg=None):\n" + body)
    return str(path)


def test_eval_model_on_a_run_and_an_hf_folder_equals_their_own_evals(full_run, tmp_path):
    # An HF folder exported from a CLIP-architecture model (the demo's stem cannot be exported)
    # with full_run's tokenizer; learned positions and no conv bias, so it imports exactly.
    tok_path = str(full_run / "tokenizer.model")
    config = tiny_config("clip", Tokenizer(tok_path).vocab_size)
    config.model.image.posemb = "learn"
    params = random_params(config)
    hf = str(tmp_path / "hf")
    export_params(config, params, tok_path, hf)
    config.evals = json.loads(tiny_evals())  # the evals full_run ran, 128 examples each
    # The run's own eval, on its params and tokenizer; the module is the imported one (its
    # config equal but for the logit scale's rounding), so both evals share its compiled code.
    loaded = load_hf_encoder(hf)
    own = dataclasses.replace(
        loaded, params=params, tokenizer=Tokenizer(tok_path), run_config=config
    )
    hf_own = run_evals(config, own, 0)

    evals = write_evals(tmp_path / "evals.py", tiny_evals())
    argv = ["eval", "--model", str(full_run), "--model", hf, "--config", evals]
    assert cli.main([*argv, "--out", str(tmp_path / "table")]) == 0
    got = json.loads((tmp_path / "table.json").read_text())
    run_own = json.loads((full_run / "eval.json").read_text())
    assert got[str(full_run)] == pytest.approx(run_own, abs=1e-6)  # step 12 included
    hf_own.pop("step")
    assert got[hf] == pytest.approx(hf_own, abs=1e-6)
    assert "zeroshot/shapes/top5" in got[hf]

    lines = (tmp_path / "table.md").read_text().splitlines()
    metrics = [k for k in got[str(full_run)] if k != "step"]
    assert lines[0] == "| model | " + " | ".join(metrics) + " |"
    assert lines[1] == "|---" * (len(metrics) + 1) + "|"
    assert lines[3] == f"| {hf} | " + " | ".join(f"{got[hf][m]:.4f}" for m in metrics) + " |"
    assert len(lines) == 4


def test_eval_model_errors_name_the_fix(tmp_path, capsys):
    evals = write_evals(tmp_path / "evals.py", json.dumps({"s": {"type": "zeroshot"}}))
    (tmp_path / "empty").mkdir()
    assert cli.main(["eval", "--model", str(tmp_path / "empty"), "--config", evals]) == EXIT_DATA
    assert "vljax export --format hf" in capsys.readouterr().err
    no_evals = tmp_path / "no_evals.py"
    no_evals.write_text("def get_config(arg=None):\n    return {'data': {}}\n")
    code = cli.main(["eval", "--model", str(tmp_path / "empty"), "--config", str(no_evals)])
    assert code == ConfigError.exit_code and "defines no evals" in capsys.readouterr().err
    assert cli.main(["eval"]) == ConfigError.exit_code
    assert "--model PATH --config EVALS.py" in capsys.readouterr().err
