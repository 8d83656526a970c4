"""Flat safetensors I/O for param trees: keys are "/"-joined paths, e.g. "img/head/kernel"."""

import flax.linen as nn
import numpy as np


def flatten(tree, prefix=""):
    """Nested dict of arrays -> {"a/b/c": np.ndarray}; LogicallyPartitioned boxes unboxed."""
    tree = nn.unbox(tree)
    out = {}

    def walk(node, path):
        if isinstance(node, dict) or hasattr(node, "items"):
            for k, v in node.items():
                walk(v, f"{path}/{k}" if path else str(k))
        else:
            out[path] = np.asarray(node)

    walk(tree, prefix)
    return out


def shapes_of(tree, prefix="") -> dict[str, tuple]:
    """{"a/b/c": shape} of a nested dict of arrays (or of shape-dtype structs)."""
    if hasattr(tree, "items"):
        out = {}
        for k, v in tree.items():
            out.update(shapes_of(v, f"{prefix}/{k}" if prefix else str(k)))
        return out
    return {prefix: tuple(tree.shape) if hasattr(tree, "shape") else tuple(np.shape(tree))}


def shape_mismatches(want: dict, got: dict) -> list[str]:
    """One line per param that the model (`want`, {path: shape}) and the loaded tree (`got`)
    disagree on: a different shape, missing from the loaded tree, or not in the model."""
    problems = [
        f"{k}: loaded shape {got[k]}, model expects {want[k]}"
        for k in want.keys() & got.keys()
        if tuple(want[k]) != tuple(got[k])
    ]
    problems += [f"{k}: missing from the loaded params (model expects {want[k]})"
                 for k in want.keys() - got.keys()]  # fmt: skip
    problems += [f"{k}: not a parameter of this model (loaded {got[k]})"
                 for k in got.keys() - want.keys()]  # fmt: skip
    return sorted(problems)


def unflatten(flat):
    tree = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def save_flat(params, path, dtype=None):
    """Writes a param tree as safetensors; `dtype` (e.g. np.float32) casts floating leaves."""
    from safetensors.numpy import save_file

    flat = flatten(params)
    if dtype is not None:
        flat = {k: v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v
                for k, v in flat.items()}  # fmt: skip
    save_file({k: np.array(v, order="C") for k, v in flat.items()}, str(path))


def load_flat(path):
    """Reads a file written by `save_flat` back into a nested dict of numpy arrays."""
    from safetensors.numpy import load_file

    return unflatten(load_file(str(path)))
