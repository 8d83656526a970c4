"""Flat safetensors I/O for param trees: keys are "/"-joined paths, e.g. "img/head/kernel"."""

import numpy as np


def flatten(tree, prefix=""):
    """Nested dict of arrays -> {"a/b/c": np.ndarray}; LogicallyPartitioned boxes unboxed."""
    import flax.linen as nn

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
