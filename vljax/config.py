"""Config loading: `file.py[:arg]`, `--config.a.b=value` overrides, validation.

Every error here is a `ConfigError` whose message names the problem and the fix; the CLI
prints it without a traceback.
"""

import ast
import difflib
import importlib.util
import json
import os
import sys

import ml_collections


class ConfigError(ValueError):
    """A config problem the user can fix; printed without a traceback."""


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads `path/to/file.py[:arg]` (calling `get_config(arg)`) or a saved `config.json`."""
    path, _, arg = spec.partition(":")
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist; pass e.g. configs/demo.py")
    if path.endswith(".json"):
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    # Recipes import `configs.common`: make the folder above `configs/` importable.
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    if root not in sys.path:
        sys.path.insert(0, root)
    name = "vljax_config_" + os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path} has no get_config(arg=None) function")
    config = module.get_config(arg or None)
    return ml_collections.ConfigDict(config)


def _closest(key: str, options) -> str:
    matches = difflib.get_close_matches(key, list(options), n=3, cutoff=0.5)
    if matches:
        return "did you mean " + " or ".join(repr(m) for m in matches) + "?"
    return "valid keys: " + ", ".join(sorted(map(str, options)))


def _parse_value(text: str, current):
    """Parses an override value with the type of the current value where there is one."""
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ConfigError(f"expected true/false, got {text!r}")
    if isinstance(current, str):
        return text  # a string field keeps "none" as a string (e.g. image.proj=none)
    if text.lower() in ("none", "null"):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    return value


def apply_override(config: ml_collections.ConfigDict, dotted: str, text: str):
    """Sets `config.a.b.c = text` (parsed), refusing keys that don't exist."""
    parts = dotted.split(".")
    node = config
    for i, part in enumerate(parts):
        where = ".".join(parts[:i]) or "config"
        if not isinstance(node, ml_collections.ConfigDict | dict):
            raise ConfigError(f"config key {dotted!r}: {where} is not a group of keys")
        if part not in node:
            # Groups that are free-form dicts (evals, data mixtures) may gain new keys.
            if i == len(parts) - 1 and dotted.split(".")[0] in ("evals",):
                node[part] = _parse_value(text, None)
                return
            raise ConfigError(
                f"unknown config key {dotted!r}: {where} has no key {part!r}; "
                + _closest(part, node.keys())
            )
        if i == len(parts) - 1:
            current = node[part]
            value = _parse_value(text, current)
            if isinstance(node, ml_collections.ConfigDict):
                try:
                    if isinstance(value, dict) and isinstance(current, ml_collections.ConfigDict):
                        node[part] = ml_collections.ConfigDict(value)
                    else:
                        with node.ignore_type():
                            node[part] = value
                except (TypeError, ValueError) as e:
                    raise ConfigError(f"config key {dotted!r}: {e}") from None
            else:
                node[part] = value
            return
        node = node[part]


def parse_overrides(argv: list[str]) -> list[tuple[str, str]]:
    """Pulls `--config.a.b=value` (or `--config.a.b value`) pairs out of argv."""
    overrides, rest = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--config."):
            key = arg[len("--config.") :]
            if "=" in key:
                key, value = key.split("=", 1)
            else:
                if i + 1 >= len(argv):
                    raise ConfigError(f"{arg} needs a value: {arg}=VALUE")
                value = argv[i + 1]
                i += 1
            overrides.append((key, value))
        else:
            rest.append(arg)
        i += 1
    return overrides, rest


REQUIRED_KEYS = (
    "seed",
    "batch_size",
    "total_steps",
    "log_every_steps",
    "checkpoint_every_steps",
    "eval_every_steps",
    "model",
    "loss",
    "optimizer",
    "data",
    "evals",
    "mesh",
    "sharding",
)

_CHOICES = {
    "loss.kind": ("softmax", "sigmoid"),
    "loss.impl": ("all_gather", "ring", "grouped"),
    "model.dtype": ("float32", "bfloat16"),
    "model.activation": ("gelu", "gelu_tanh", "quick_gelu"),
    "model.image.pool": ("cls", "gap", "map"),
    "model.image.posemb": ("learn", "sincos2d"),
    "model.text.pool": ("eos", "last", "first", "mean"),
    "optimizer.schedule": ("cosine", "constant"),
}


def validate(config: ml_collections.ConfigDict):
    """Checks that values make sense before any work starts."""
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise ConfigError(f"config lacks top-level keys {missing}; start from configs/common.py")
    for dotted, choices in _CHOICES.items():
        node = config
        for part in dotted.split("."):
            node = node.get(part) if node is not None else None
        if node is not None and node not in choices:
            raise ConfigError(
                f"config.{dotted} = {node!r} is not one of {choices}; set --config.{dotted}="
                + choices[0]
            )
    for key in ("batch_size", "total_steps"):
        if int(config[key]) <= 0:
            raise ConfigError(f"config.{key} must be positive, got {config[key]}")
    accum = int(config.optimizer.get("accum_steps", 1))
    if accum < 1 or config.batch_size % accum:
        raise ConfigError(
            f"config.optimizer.accum_steps = {accum} must divide batch_size = {config.batch_size}"
        )
    if config.loss.impl == "grouped" and not config.loss.get("group_size"):
        raise ConfigError("config.loss.impl = 'grouped' needs --config.loss.group_size=N devices")
    if config.model.get("bias_init") is None and config.loss.kind == "sigmoid":
        raise ConfigError(
            "config.loss.kind = 'sigmoid' needs a learnable bias: set --config.model.bias_init=-10"
        )
    for axis, size in config.mesh.items():
        if axis not in ("data", "fsdp", "tensor"):
            raise ConfigError(
                f"config.mesh has unknown axis {axis!r}; "
                + _closest(axis, ("data", "fsdp", "tensor"))
            )
        if not isinstance(size, int) or (size < 1 and size != -1):
            raise ConfigError(f"config.mesh.{axis} = {size!r} must be a positive int or -1")


def build_config(spec: str, overrides: list[tuple[str, str]] = ()) -> ml_collections.ConfigDict:
    config = load_config(spec)
    for key, value in overrides:
        apply_override(config, key, value)
    validate(config)
    return config


def to_json(config: ml_collections.ConfigDict) -> str:
    return config.to_json(indent=2, sort_keys=True)


def save_config(config: ml_collections.ConfigDict, path: str):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(to_json(config))
    os.replace(tmp, path)
