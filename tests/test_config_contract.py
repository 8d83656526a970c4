"""The config contract: every key the code reads is declared in configs/common.py.

Walks the source of vljax/ for reads through the names that hold a vljax config (or one of
its groups): `config.a.b`, `config.a.get("b")`, `config["a"]`. A new name for a config group
goes in ROOTS; a name that holds some other config (a Hugging Face one) goes in NOT_OURS.
"""

import ast
import pathlib

import ml_collections

from configs import common

ROOT = pathlib.Path(__file__).resolve().parents[1]

# variable name -> the group of the vljax config it holds
ROOTS = {
    "config": "",
    "run_config": "",
    "model_config": "model",
    "mcfg": "model",
    "image_config": "model.image",
    "text_config": "model.text",
    "opt_config": "optimizer",
    "mesh_config": "mesh",
    "sharding_config": "sharding",
    "augment_config": "data.augment",
}
# Names that hold configs that are not ours (transformers', a tokenizer's), per file.
NOT_OURS = {
    "vljax/export/hf_config.py": {"config"},  # builds the transformers config
}
# ConfigDict methods: a chain ends at them.
METHODS = {
    "get",
    "get_type",
    "to_dict",
    "to_json",
    "items",
    "keys",
    "values",
    "unlocked",
    "ignore_type",
    "lock",
    "update",
    "copy_and_resolve_references",
}


def _chain(node):
    """`a.b.c` -> ("a", ["b", "c"]); `a.b.get("c")` -> ("a", ["b", "c"]); else None."""
    parts = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            parts.append(node.slice.value)
            node = node.value
        else:
            break
    if not isinstance(node, ast.Name):
        return None
    return node.id, parts[::-1]


def config_reads():
    """(file:line, dotted key) of every read of a vljax config in vljax/."""
    reads = []
    for path in sorted((ROOT / "vljax").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(), rel)
        skip = NOT_OURS.get(rel, set())
        # Outermost chains only: `config.model.image` inside `config.model.image.width`.
        inner = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute | ast.Subscript):
                inner.add(id(node.value))
        for node in ast.walk(tree):
            if id(node) in inner or not isinstance(node, ast.Attribute | ast.Subscript):
                continue
            found = _chain(node)
            if found is None or found[0] not in ROOTS or found[0] in skip:
                continue
            name, parts = found
            if parts and parts[-1] in METHODS:
                parts = parts[:-1]
                call = _parent_call(node, tree)
                if call is not None and call.args and isinstance(call.args[0], ast.Constant):
                    if node.attr in ("get", "get_type"):
                        parts = parts + [call.args[0].value]
            key = ".".join(p for p in [ROOTS[name], *map(str, parts)] if p)
            if key:
                reads.append((f"{rel}:{node.lineno}", key))
    return reads


_PARENTS = {}


def _parent_call(node, tree):
    if id(tree) not in _PARENTS:
        _PARENTS[id(tree)] = {
            id(child): parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)
        }
    parent = _PARENTS[id(tree)].get(id(node))
    return parent if isinstance(parent, ast.Call) and parent.func is node else None


def declared(key: str) -> bool:
    node = common.base_config()
    for part in key.split("."):
        if not isinstance(node, ml_collections.ConfigDict):
            return True  # inside a value (a list, a free-form dict): not a config key
        if part not in node:
            return False
        node = node[part]
    return True


def test_the_walk_finds_reads():
    keys = {key for _, key in config_reads()}
    # Reads in several spellings, so a broken walk cannot pass by finding nothing.
    assert {"batch_size", "model.image.width", "optimizer.learning_rate"} <= keys
    assert "tokenizer.model" in keys  # config.tokenizer.get("model")


def test_every_read_key_is_declared():
    undeclared = [f"{where}: config.{key}" for where, key in config_reads() if not declared(key)]
    assert not undeclared, "read but not declared in configs/common.py:\n" + "\n".join(undeclared)
