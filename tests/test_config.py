"""Config loading, overrides and the errors a user sees (through the real CLI)."""

import json

import jax
import pytest

from tests.train.tiny import tiny_overrides
from vljax import cli
from vljax.choices import CHOICES
from vljax.config import ConfigError, build_config
from vljax.methods import clip
from vljax.methods.clip import build_model
from vljax.train.state import abstract_boxed_params, boxed_params_init


def test_overrides_parse_with_the_existing_types():
    c = build_config(
        "configs/demo.py",
        [("model.embed_dim", "64"), ("optimizer.learning_rate", "3"), ("model.remat", "true")],
    )
    assert c.model.embed_dim == 64
    assert c.optimizer.learning_rate == 3.0 and isinstance(c.optimizer.learning_rate, float)
    assert c.model.remat is True


def test_config_arg_selects_a_variant():
    c = build_config("configs/demo.py:sigmoid")
    assert c.loss.kind == "sigmoid" and c.model.bias_init == -10.0


@pytest.mark.parametrize(
    "key, suggestion",
    [
        ("optimzer.learning_rate", "'optimizer'"),
        ("model.image.widht", "'width'"),
        ("batchsize", "'batch_size'"),
    ],
)
def test_misspelt_key_names_the_closest_keys(key, suggestion):
    with pytest.raises(ConfigError) as e:
        build_config("configs/demo.py", [(key, "1")])
    assert suggestion in str(e.value) and "unknown config key" in str(e.value)


def test_cli_reports_bad_key_without_traceback(tmp_path, capsys):
    code = cli.main(
        ["train", "--config", "configs/demo.py", "--workdir", str(tmp_path), "--config.lossx=1"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "did you mean 'loss'" in err and "Traceback" not in err
    assert not (tmp_path / "config.json").exists()  # failed before any work


def test_bad_choice_and_incompatible_values_are_explained():
    with pytest.raises(ConfigError, match="loss.impl"):
        build_config("configs/demo.py", [("loss.impl", "rign")])
    with pytest.raises(ConfigError, match="bias_init"):
        build_config("configs/demo.py", [("loss.kind", "sigmoid")])
    with pytest.raises(ConfigError, match="accum_steps"):
        build_config("configs/demo.py", [("optimizer.accum_steps", "3")])


def test_missing_config_file_is_clear():
    with pytest.raises(ConfigError, match="does not exist"):
        build_config("configs/nope.py")


def test_saved_json_config_reloads_identically(tmp_path):
    from vljax.config import save_config

    c = build_config("configs/demo.py")
    save_config(c, str(tmp_path / "config.json"))
    again = build_config(str(tmp_path / "config.json"))
    assert json.loads(again.to_json()) == json.loads(c.to_json())


MODEL_CHOICES = [
    (key, value) for key, values in CHOICES.items() if key.startswith("model.") for value in values
]


@pytest.mark.parametrize("key,value", MODEL_CHOICES)
def test_every_model_choice_builds_and_traces(key, value):
    """A name vljax/choices.py lists is one the model implements: the validated config
    builds a model whose forward traces (shapes only, nothing compiled)."""
    changes = {key: value}
    if key == "model.image.proj" and value == "none":
        changes["model.embed_dim"] = "32"  # the pooled output is the embedding
    config = build_config("configs/demo.py", tiny_overrides() + list(changes.items()))
    model = build_model(config.model)
    boxed = abstract_boxed_params(boxed_params_init(clip.METHOD, model, config.model))
    assert jax.tree.leaves(boxed)
