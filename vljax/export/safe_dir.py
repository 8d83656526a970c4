"""Output folders that appear whole or not at all, and that never replace a vljax run.

A folder is built under a hidden temporary sibling and renamed into place when complete; an
existing folder is replaced as a whole (no stale file of an earlier export survives), and on
any failure the temporary folder is removed and the destination left as it was.
"""

import contextlib
import json
import os
import shutil
import uuid

from vljax.errors import ExportError


def holds_vljax_run(folder: str) -> bool:
    """True for a training run directory: checkpoints/, metrics.jsonl, or a vljax config.json."""
    if os.path.isdir(os.path.join(folder, "checkpoints")):
        return True
    if os.path.exists(os.path.join(folder, "metrics.jsonl")):
        return True
    try:
        with open(os.path.join(folder, "config.json")) as f:
            model = json.load(f).get("model")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(model, dict) and "image" in model and "text" in model


def check_not_inside(out: str, run_dir: str):
    """Refuses an output folder that is a run directory or inside one."""
    out, run_dir = os.path.abspath(out), os.path.abspath(run_dir)
    if os.path.commonpath([out, run_dir]) == run_dir:
        raise ExportError(
            f"--out {out} is inside the run {run_dir}; writing there would damage the run. "
            "Choose a folder outside it, e.g. --out exported/"
        )


@contextlib.contextmanager
def atomic_folder(out: str, overwrite: bool = False, refuse_runs: bool = True):
    """`with atomic_folder(OUT) as tmp:` write into `tmp`; OUT appears when the block ends."""
    out = os.path.abspath(out)
    if refuse_runs and holds_vljax_run(out):
        raise ExportError(f"{out} holds a vljax run; it is never overwritten. Choose another --out")
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise ExportError(f"{out} is not empty; pass --overwrite to replace it, or another --out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ExportError(f"{out} is a file, not a folder; choose another --out")
    parent, name = os.path.split(out)
    os.makedirs(parent, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = os.path.join(parent, f".{name}.tmp-{tag}")
    os.makedirs(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.exists(out):
        old = os.path.join(parent, f".{name}.old-{tag}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
