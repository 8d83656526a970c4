"""`vljax eval --model PATH [--model PATH2 ...] --config EVALS.py [--out FILE]`: the same evals
on any checkpoint vljax can load, and one table across them.

PATH is a vljax run directory (config.json + checkpoints/; `--step N` picks a checkpoint), a
folder written by `vljax export --format hf`, or a transformers CLIP/SigLIP folder
(config.json + model.safetensors), all read by `vljax.load`. EVALS.py's `get_config(arg)`
returns a config with `evals` (entries as in a training config) and, optionally, `data`
settings the evals read (`data.data_dir` for prepared sets, `data.train.lang` for the default
language); a run's own `data` settings fill in what the file leaves out. Each model sees the
eval images at its own resolution and tokenises with its own tokenizer.

The results print as a markdown table, one row per model and one column per metric
(`results_table`); `--out FILE.md` also writes it, with `FILE.json` next to it:
`{PATH: {metric: value, ...}, ...}` (`step` for runs). The models' folders are never written.
"""

from __future__ import annotations

import json
import os

import ml_collections

from vljax.atomic_write import write_text
from vljax.config import load_config
from vljax.errors import ConfigError, DataError
from vljax.evals.run import run_evals
from vljax.inference import load_hf_encoder, load_run_encoder

_KINDS = (
    "a vljax run directory (config.json + checkpoints/), a folder written by `vljax export "
    "--format hf`, or a Hugging Face CLIP/SigLIP folder (config.json + model.safetensors)"
)


def load_evals_config(spec: str) -> ml_collections.ConfigDict:
    """EVALS.py[:arg] -> its config, which must hold a non-empty `evals`."""
    config = load_config(spec)
    evals = config.get("evals")
    if not evals or not hasattr(evals, "items"):
        raise ConfigError(
            f"{spec} defines no evals: its get_config() must return a config with `evals`, "
            'e.g. config.evals = {"imagenet": {"type": "zeroshot", "dataset": '
            '"tfds:imagenet:test", "classnames": "imagenet", "templates": "imagenet80"}} '
            "(docs/evals.md)"
        )
    return config


def load_model(path: str, step: int | None = None):
    """vljax.load(path), after checking that path is one of the three kinds; `step` picks a
    run's checkpoint (HF folders have one set of weights)."""
    if not os.path.isdir(path):
        raise DataError(f"--model {path!r} is not a folder; pass {_KINDS}")
    if os.path.isdir(os.path.join(path, "checkpoints")):
        return load_run_encoder(path, step)
    config_json = os.path.join(path, "config.json")
    if os.path.isfile(config_json):
        with open(config_json) as f:
            is_hf = "model_type" in f.read()
        if not is_hf:  # a vljax run's config.json
            raise DataError(f"--model {path!r} is a vljax run without checkpoints/; train it first")
        return load_hf_encoder(path)  # names the fix for pickle-only or non-CLIP folders
    raise DataError(f"--model {path!r} is none of the folders vljax evaluates; pass {_KINDS}")


def _as_dict(node) -> dict:
    return node.to_dict() if hasattr(node, "to_dict") else dict(node or {})


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def model_eval_config(evals_config, encoder) -> ml_collections.ConfigDict:
    """The config `run_evals` reads for one model: the model's own `model` settings, the data
    settings of the run (if any) under those of the evals file, and the file's evals."""
    base = _as_dict(encoder.run_config) if encoder.run_config is not None else {}
    data = _merge({"data_dir": None, "train": {"lang": "en"}}, base.get("data", {}))
    data = _merge(data, _as_dict(evals_config.get("data")))
    config = dict(base, model=_as_dict(encoder.model_config), data=data)
    config["evals"] = _as_dict(evals_config.evals)
    return ml_collections.ConfigDict(config)


def evaluate_models(paths, evals_spec: str, step: int | None = None) -> dict:
    """{path: results} for every model, in order (results as in eval.json; `step` for runs)."""
    if len(set(paths)) < len(paths):
        raise ConfigError(f"a --model is given twice in {list(paths)}; give each once")
    evals_config = load_evals_config(evals_spec)
    out, caches = {}, {}
    for path in paths:
        encoder = load_model(path, step)
        config = model_eval_config(evals_config, encoder)
        # Eval sets are loaded at the model's resolution: models of one size share them.
        cache = caches.setdefault(json.dumps(config.model.to_dict(), sort_keys=True), {})
        results = run_evals(config, encoder, encoder.step or 0, cache)
        if encoder.step is None:
            results.pop("step")
        out[path] = results
    return out


def results_table(results_by_model: dict) -> str:
    """Markdown: a row per model, a column per metric (in first-seen order), 4 decimals."""
    metrics = []
    for results in results_by_model.values():
        metrics += [k for k in results if k != "step" and k not in metrics]
    cell = lambda v: "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
    rows = ["| model | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for path, results in results_by_model.items():
        name = path.replace("|", "\\|")
        rows.append(f"| {name} | " + " | ".join(cell(results.get(m)) for m in metrics) + " |")
    return "\n".join(rows) + "\n"


def write_table(results_by_model: dict, out: str) -> tuple[str, str]:
    """FILE(.md) and FILE.json; returns their paths."""
    md = out if out.endswith(".md") else out + ".md"
    js = os.path.splitext(md)[0] + ".json"
    if os.path.dirname(md):
        os.makedirs(os.path.dirname(md), exist_ok=True)
    write_text(md, results_table(results_by_model))
    write_text(js, json.dumps(results_by_model, indent=2))
    return md, js


def cli(paths, evals_spec, out=None, step=None) -> int:
    if not evals_spec:
        raise ConfigError("vljax eval --model needs --config EVALS.py (a file with config.evals)")
    results = evaluate_models(paths, evals_spec, step)
    print(results_table(results), end="")
    if out:
        md, js = write_table(results, out)
        print(f"wrote {md} and {js}")
    return 0
