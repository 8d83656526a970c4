"""The order in which pytest-xdist hands test files to the workers: longest first.

`make test` runs whole files per worker (`--dist loadfile`) in collection order
(`--no-loadscope-reorder`), each file to the first worker that is free. Longest first
(`tests/file_seconds.json`, measured by `python benchmarks/test_suite.py
--write-file-seconds`) leaves the short files for the end, so the two workers finish
together instead of one running a long file alone while the other idles. A file the table
does not know (a new one) goes first: if it is long, it is not the one left at the end.

The files of TORCH_FILES run together, on one worker (`make test` schedules with
`FileScheduling`): they alone import torch, transformers and open_clip (through the export
code), 3.8-4.0 CPU s in each process that does, so the other worker never imports them.
tests/test_file_order.py fails, naming the file, when a test module outside them imports
torch, transformers, open_clip or the export code.
"""

import json
import math
import pathlib

from xdist.scheduler import LoadFileScheduling

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILE_SECONDS = "tests/file_seconds.json"
TORCH_FILES = ("tests/export/", "tests/train/test_eval_model.py")  # prefixes


def scope(name: str) -> str:
    """What one worker runs whole for the test file `name` (relative to the repository): the
    file, or all of TORCH_FILES."""
    return "TORCH_FILES" if name.startswith(TORCH_FILES) else name


class FileScheduling(LoadFileScheduling):
    """pytest-xdist's `--dist loadfile`, with the files of TORCH_FILES as one unit (a unit is
    what `_split_scope` returns, the method xdist's own loadfile and loadgroup override)."""

    def _split_scope(self, nodeid: str) -> str:
        return scope(super()._split_scope(nodeid))


def file_seconds(path=ROOT / FILE_SECONDS) -> dict[str, float]:
    """{test file relative to the repository: its measured seconds}; {} without the table."""
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text())["seconds"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path} is not a table of test-file seconds ({err!r}): rewrite it with `python "
            "benchmarks/test_suite.py --write-file-seconds`, or delete it (the files then run "
            "in collection order)"
        ) from err


def longest_first(paths, seconds=None) -> dict:
    """{path: sort key} for the test files `paths` (pathlib.Path): longest measured first,
    unknown files before all of them; equal keys keep collection order (a stable sort). The
    files of one unit (`scope`) share one key, their sum. `seconds`: the table (default:
    tests/file_seconds.json)."""
    seconds = file_seconds() if seconds is None else seconds
    names = {path: pathlib.Path(path).resolve().relative_to(ROOT).as_posix() for path in paths}
    totals = {}
    for name in names.values():
        totals[scope(name)] = totals.get(scope(name), 0.0) + seconds.get(name, math.inf)
    return {path: -totals[scope(name)] for path, name in names.items()}
