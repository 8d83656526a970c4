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

from vljax.atomic_write import write_text
from vljax.choices import CHOICES, MESH_AXES
from vljax.errors import ConfigError


def _import_roots(path: str) -> list[str]:
    """Folders that make `from configs import common` work in a recipe: the folder above the
    recipe's `configs/`, the working directory (a recipe kept outside the repository, run from
    the repository root), and the folder this vljax was installed from."""
    candidates = [
        os.path.dirname(os.path.dirname(os.path.abspath(path))),
        os.getcwd(),
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    ]
    return [c for c in candidates if os.path.isdir(os.path.join(c, "configs"))]


def load_config_module(path: str):
    """Imports the recipe (or sweep) file at `path` as a module, with `from configs import
    ...` working in it."""
    for root in reversed(_import_roots(path)):
        if root not in sys.path:
            sys.path.insert(0, root)
    name = "vljax_config_" + os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(
            f"{e.filename}:{e.lineno}: syntax error in the config file: {e.msg}"
        ) from None
    except Exception as e:  # the recipe is the user's code: report where it failed
        raise ConfigError(f"{path} failed to load: {type(e).__name__}: {e}") from None
    return module


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads `path/to/file.py[:arg]` (calling `get_config(arg)`) or a saved `config.json`."""
    path, _, arg = spec.partition(":")
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist; pass e.g. configs/demo.py")
    if path.endswith(".json"):
        try:
            with open(path) as f:
                return ml_collections.ConfigDict(json.load(f))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path} is not a readable config.json ({e})") from None
    module = load_config_module(path)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path} has no get_config(arg=None) function")
    try:
        config = module.get_config(arg or None)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(
            f"{path}:get_config({arg or None!r}) failed: {type(e).__name__}: {e}"
        ) from None
    return ml_collections.ConfigDict(config)


def _closest(key: str, options) -> str:
    matches = difflib.get_close_matches(key, list(options), n=3, cutoff=0.5)
    if matches:
        return "did you mean " + " or ".join(repr(m) for m in matches) + "?"
    return "valid keys: " + ", ".join(sorted(map(str, options)))


def _declared_type(node, key):
    """The type `node.key` was declared with (a placeholder's type when its value is None);
    None for free-form dicts, where anything goes."""
    if isinstance(node, ml_collections.ConfigDict):
        declared = node.get_type(key)
        return None if declared is type(None) else declared
    current = node[key]
    return None if current is None else type(current)


def parse_value(text: str, declared, nullable: bool, dotted: str, loose: bool = False):
    """Parses an override's text to the key's declared type, or refuses it naming the type.

    `loose`: the group is not type-safe (data.train: a dataset is a name or a mixture dict).
    """

    def refuse(kind):
        raise ConfigError(
            f"--config.{dotted}={text!r}: expected {kind}; e.g. --config.{dotted}={EXAMPLES[kind]}"
        )

    if nullable and text.lower() in ("none", "null"):
        return None
    if declared is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        refuse("true or false")
    if declared is str and not (loose and text.lstrip().startswith("{")):
        return text  # a string field keeps "none" as a string (e.g. image.proj=none)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare word: a string
    if declared is None or (declared is str and isinstance(value, dict)):
        return value  # free-form, or a mixture dict where a dataset name may go
    if declared is str:
        return text
    if declared is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        refuse("a number")
    if declared is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        refuse("an integer")
    if declared in (list, tuple):
        if isinstance(value, list | tuple):
            return declared(value)
        refuse("a list")
    if declared in (dict, ml_collections.ConfigDict):
        if isinstance(value, dict):
            return ml_collections.ConfigDict(value) if declared is not dict else value
        refuse("a dict")
    if isinstance(value, declared):
        return value
    refuse(declared.__name__)


EXAMPLES = {
    "true or false": "true",
    "a number": "0.001",
    "an integer": "8",
    "a list": "'[1, 2]'",
    "a dict": "'{}'",
}


def apply_override(config: ml_collections.ConfigDict, dotted: str, text: str):
    """Sets `config.a.b.c = text` (parsed to the key's declared type), refusing keys that
    don't exist and values of another type."""
    parts = dotted.split(".")
    node = config
    for i, part in enumerate(parts):
        where = ".".join(parts[:i]) or "config"
        if not isinstance(node, ml_collections.ConfigDict | dict):
            raise ConfigError(f"config key {dotted!r}: {where} is not a group of keys")
        if part not in node:
            # Groups that are free-form dicts (evals) may gain new keys.
            if i == len(parts) - 1 and parts[0] == "evals":
                node[part] = parse_value(text, None, True, dotted)
                return
            raise ConfigError(
                f"unknown config key {dotted!r}: {where} has no key {part!r}; "
                + _closest(part, node.keys())
            )
        if i == len(parts) - 1:
            loose = isinstance(node, ml_collections.ConfigDict) and not node.is_type_safe
            nullable = node[part] is None
            value = parse_value(text, _declared_type(node, part), nullable, dotted, loose)
            if isinstance(node, ml_collections.ConfigDict):
                try:
                    with node.ignore_type():  # parse_value already checked the type
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


def validate(config: ml_collections.ConfigDict):
    """Checks that values make sense before any work starts."""
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise ConfigError(f"config lacks top-level keys {missing}; start from configs/common.py")
    for dotted, choices in CHOICES.items():
        node = config
        for part in dotted.split("."):
            node = node.get(part) if node is not None else None
        if node is not None and node not in choices:
            close = difflib.get_close_matches(str(node), choices, n=1, cutoff=0.5)
            fix = close[0] if close else choices[0]
            raise ConfigError(
                f"config.{dotted} = {node!r} is not one of {', '.join(choices)}; "
                f"set --config.{dotted}={fix}"
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
    for tower in ("image", "text"):
        t = config.model[tower]
        if t.width % t.heads:
            divisors = [h for h in range(1, t.width + 1) if t.width % h == 0 and h <= 64]
            raise ConfigError(
                f"config.model.{tower}.width = {t.width} is not divisible by heads = {t.heads}; "
                f"set --config.model.{tower}.heads to one of {divisors[-6:]}"
            )
    for key, what in (("tokenizer.model", "a tokenizer"), ("init_from", "an imported model")):
        node = config
        for part in key.split("."):
            node = node.get(part) if node is not None else None
        if node and not os.path.exists(node):
            raise ConfigError(f"config.{key} = {node!r} does not exist; give the path of {what}")
    data_dir = config.data.get("data_dir")
    if data_dir and not os.path.isdir(data_dir):
        raise ConfigError(
            f"config.data.data_dir = {data_dir!r} is not a folder; give the --data-dir "
            "that `vljax prepare` wrote to"
        )
    for axis, size in config.mesh.items():
        if axis == "dcn_data":  # a hybrid mesh's granules (vljax/sharding.py make_mesh)
            if not isinstance(size, int) or size < 1:
                raise ConfigError(f"config.mesh.dcn_data = {size!r} must be a positive int")
            continue
        if axis not in MESH_AXES:
            raise ConfigError(
                f"config.mesh has unknown axis {axis!r}; "
                + _closest(axis, (*MESH_AXES, "dcn_data"))
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
    write_text(path, to_json(config))
