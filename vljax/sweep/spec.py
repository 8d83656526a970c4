"""Sweep files and the runs they expand to.

A sweep file (configs/ablations/*.py) is a recipe with one more function:

    def get_config(arg=None): ...          # the base recipe, as in any configs/*.py
    def get_sweep(): return [...]          # one dict of overrides per run

Each dict maps dotted config keys to values (`{"loss.kind": "sigmoid"}`); two special keys
change more than a value: RECIPE_KEY names another recipe (`"configs/coca.py:demo"`) that
the run starts from instead of the sweep file's get_config, and NAME_KEY gives the run's
name instead of the one made from its overrides. `product` and `zip_` build the lists.
"""

import ast
import hashlib
import inspect
import itertools
import json
import os
import re
from dataclasses import dataclass

import ml_collections

from vljax.config import build_config, load_config_module
from vljax.errors import ConfigError

RECIPE_KEY = "recipe"  # a run's own recipe, `file.py[:arg]`, instead of the sweep file's
NAME_KEY = "name"  # a run's own name, instead of the one made from its overrides
SPECIAL_KEYS = (RECIPE_KEY, NAME_KEY)

MAX_NAME = 80  # characters of a readable run name before it is cut and given a hash
HASH_CHARS = 8
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


# ---------------------------------------------------------------------------------------
# Building the list of runs


def _as_runs(factor) -> list[dict]:
    """A factor of `product`/`zip_` as a list of override dicts: a list is taken as it is;
    a dict of key -> list of values is `zip_` of its keys (one run per position)."""
    if isinstance(factor, list | tuple):
        runs = list(factor)
        for run in runs:
            if not isinstance(run, dict):
                raise ConfigError(
                    f"sweep: a list factor holds override dicts, got {run!r}; write "
                    "[{'loss.kind': 'softmax'}, ...] or {'loss.kind': ['softmax', ...]}"
                )
        return [dict(r) for r in runs]
    if isinstance(factor, dict):
        columns = {}
        for key, values in factor.items():
            if not isinstance(values, list | tuple):
                raise ConfigError(
                    f"sweep: {key!r} needs a list of values, got {values!r}; "
                    f"write {{{key!r}: [{values!r}]}}"
                )
            columns[key] = list(values)
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{k}: {len(v)}" for k, v in columns.items())
            raise ConfigError(
                f"sweep: zipped keys need lists of one length, got {sizes}; make them equal "
                "or combine them with sweep.product"
            )
        n = lengths.pop() if lengths else 0
        return [{k: v[i] for k, v in columns.items()} for i in range(n)]
    raise ConfigError(
        f"sweep: expected a list of override dicts or a dict of key -> values, got {factor!r}"
    )


def _merge(parts) -> dict:
    merged = {}
    for part in parts:
        for key, value in part.items():
            if key in merged and merged[key] != value:
                raise ConfigError(
                    f"sweep: key {key!r} is set twice in one run ({merged[key]!r} and "
                    f"{value!r}); sweep it in one factor only"
                )
            merged[key] = value
    return merged


def product(*factors) -> list[dict]:
    """Every combination of the factors, the first varying slowest. A factor is a dict of
    key -> values (each key its own axis) or a list of override dicts (one axis):

        product({"loss.kind": ["softmax", "sigmoid"]}, {"loss.impl": ["all_gather", "ring"]})
    """
    axes = []
    for factor in factors:
        if isinstance(factor, dict):
            axes += [_as_runs({key: values}) for key, values in factor.items()]
        else:
            axes.append(_as_runs(factor))
    return [_merge(combo) for combo in itertools.product(*axes)]


def zip_(*factors) -> list[dict]:
    """The factors side by side, run i merging position i of each; all must have one
    length (named zip_ so it does not shadow the builtin):

        zip_({"batch_size": [64, 128, 256], "total_steps": [800, 400, 200]})
    """
    columns = [_as_runs(f) for f in factors]
    lengths = {len(c) for c in columns}
    if len(lengths) > 1:
        raise ConfigError(
            f"sweep.zip_: factors of different lengths {sorted(lengths)}; make them equal or "
            "use sweep.product"
        )
    return [_merge(parts) for parts in zip(*columns)]


# ---------------------------------------------------------------------------------------
# Override values as command-line text, and run names


def override_text(value) -> str:
    """The text of `--config.key=TEXT` that vljax.config.parse_value reads back as `value`."""
    if isinstance(value, ml_collections.ConfigDict):
        value = value.to_dict()
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict | list | tuple):
        text = json.dumps(value, sort_keys=True)
        try:
            if ast.literal_eval(text) == value:
                return text
        except (ValueError, SyntaxError):
            pass
        return repr(value)  # JSON's true/false/null are not Python literals
    raise ConfigError(
        f"sweep: override value {value!r} of type {type(value).__name__} has no command-line "
        "form; use a str, number, bool, None, list or dict"
    )


def _short_keys(keys) -> dict:
    """Each dotted key's last part, or the whole key where two keys share a last part."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _digest(recipe, overrides) -> str:
    text = json.dumps([recipe, overrides], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:HASH_CHARS]


def readable_name(recipe_label, overrides: dict) -> tuple[str, bool]:
    """(name, exact): `kind=sigmoid,impl=ring` from the overrides (the run's own recipe
    first); `exact` is False when a value had to be changed, cut or was a list/dict, and
    the name then needs a hash to stay unique."""
    short = _short_keys(list(overrides))
    parts = [recipe_label] if recipe_label else []
    exact = True
    for key, value in overrides.items():
        if isinstance(value, dict | list | tuple | ml_collections.ConfigDict):
            exact = False
        parts.append(f"{short[key]}={override_text(value)}")
    name = ",".join(parts) or "base"
    safe = _UNSAFE.sub("_", name)
    if safe != name or len(safe) > MAX_NAME:
        exact = False
    return safe[:MAX_NAME].rstrip(",_"), exact


@dataclass(frozen=True)
class Run:
    """One run of a sweep: `vljax train --config RECIPE --workdir WORKDIR --config.k=v...`."""

    name: str
    recipe: str
    overrides: tuple  # ((dotted key, command-line text), ...) in the sweep file's order
    workdir: str

    def train_args(self) -> list[str]:
        args = ["--config", self.recipe, "--workdir", self.workdir]
        return args + [f"--config.{key}={text}" for key, text in self.overrides]

    def build_config(self) -> ml_collections.ConfigDict:
        """The run's config, refused with the trainer's own ConfigError (a misspelled key
        names the closest keys)."""
        return build_config(self.recipe, list(self.overrides))


def _recipe_label(recipe: str) -> str:
    path, _, arg = recipe.partition(":")
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"{stem}-{arg}" if arg else stem


def _absolute_recipe(recipe: str) -> str:
    path, sep, arg = recipe.partition(":")
    return os.path.abspath(path) + sep + arg


def expand(entries: list[dict], sweep_spec: str, root: str, absolute=False) -> list[Run]:
    """The runs of a sweep's entries: each with its recipe, overrides as text, a name that
    is readable, filesystem-safe and unique, and its workdir ROOT/NAME. `absolute`: recipe
    paths made absolute (for launchers that start runs in another directory)."""
    drafts = []
    seen = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"{sweep_spec}: get_sweep()[{i}] is {entry!r}, not a dict")
        overrides = {k: v for k, v in entry.items() if k not in SPECIAL_KEYS}
        for key in overrides:
            if not isinstance(key, str) or not key or key.startswith("--"):
                raise ConfigError(
                    f"{sweep_spec}: get_sweep()[{i}] has key {key!r}; keys are dotted config "
                    "keys such as 'loss.kind' (no --config. prefix)"
                )
        own_recipe = entry.get(RECIPE_KEY, "")  # as written: names and hashes use this
        recipe = own_recipe or sweep_spec
        as_text = tuple((k, override_text(v)) for k, v in overrides.items())
        identity = (own_recipe, as_text)
        if identity in seen:
            raise ConfigError(
                f"{sweep_spec}: get_sweep()[{seen[identity]}] and [{i}] are the same run "
                f"({recipe} with {dict(as_text)}); remove one"
            )
        seen[identity] = i
        label = _recipe_label(recipe) if RECIPE_KEY in entry else ""
        if NAME_KEY in entry:
            name = str(entry[NAME_KEY])
            if _UNSAFE.search(name) or name in ("", ".", ".."):
                raise ConfigError(
                    f"{sweep_spec}: run name {name!r} is not filesystem-safe; use letters, "
                    "digits and . _ = , + -"
                )
            drafts.append([name, True, own_recipe, as_text, True])
        else:
            name, exact = readable_name(label, overrides)
            drafts.append([name, exact, own_recipe, as_text, False])
    counts = {}
    for draft in drafts:
        counts[draft[0]] = counts.get(draft[0], 0) + 1
    runs = []
    for name, exact, own_recipe, as_text, given in drafts:
        if counts[name] > 1 and given:
            raise ConfigError(f"{sweep_spec}: two runs are named {name!r}; give unique names")
        if counts[name] > 1 or not exact:
            name = f"{name}-{_digest(own_recipe, as_text)}"
        recipe = own_recipe or sweep_spec
        if absolute:
            recipe = _absolute_recipe(recipe)
        runs.append(Run(name, recipe, as_text, os.path.join(root, name)))
    return runs


def load_sweep(spec: str, root: str, absolute=False) -> list[Run]:
    """The runs of sweep file `file.py[:arg]` under workdir root `root` (see `expand`)."""
    path, _, arg = spec.partition(":")
    if not os.path.exists(path):
        raise ConfigError(
            f"sweep file {path!r} does not exist; pass e.g. configs/ablations/loss.py"
        )
    module = load_config_module(path)
    get_sweep = getattr(module, "get_sweep", None)
    if get_sweep is None or not hasattr(module, "get_config"):
        raise ConfigError(
            f"{path} is not a sweep file: it needs get_config(arg=None) and get_sweep() "
            "(see configs/ablations/loss.py)"
        )
    takes_arg = bool(inspect.signature(get_sweep).parameters)
    try:
        entries = get_sweep(arg or None) if takes_arg else get_sweep()
    except ConfigError:
        raise
    except Exception as e:  # the sweep file is the user's code: report where it failed
        raise ConfigError(f"{path}:get_sweep() failed: {type(e).__name__}: {e}") from None
    if not isinstance(entries, list | tuple) or not entries:
        raise ConfigError(f"{path}:get_sweep() must return a non-empty list of override dicts")
    return expand(list(entries), spec, root, absolute)
