"""The workers' file order (tests/file_order.py): the measured table that
benchmarks/test_suite.py writes puts the longest files first and unknown files before them;
the files that import torch go to one worker, placed by their sum, and every test module
that imports torch is one of them."""

import ast
import json

import pytest

from benchmarks.test_suite import DURATION, write_file_seconds
from tests.file_order import ROOT, TORCH_FILES, file_seconds, longest_first, scope

# Lines of `pytest --durations=0`, as the benchmark parses them.
DURATIONS = """\
12.50s call     tests/a/test_long.py::test_one
0.40s setup    tests/test_short.py::test_x
9.00s call     tests/a/test_long.py::test_two[1]
3.10s teardown tests/test_mid.py::test_y
0.20s call     tests/test_short.py::test_x
"""


def test_longest_measured_file_first_and_unknown_files_before_them(tmp_path):
    phases = [m.groups() for line in DURATIONS.splitlines() if (m := DURATION.match(line))]
    table = tmp_path / "file_seconds.json"
    assert write_file_seconds(phases, table) == table
    written = json.loads(table.read_text())
    seconds = written["seconds"]
    assert seconds == {"tests/a/test_long.py": 21.5, "tests/test_mid.py": 3.1,
                       "tests/test_short.py": 0.6}  # fmt: skip
    assert list(seconds) == ["tests/a/test_long.py", "tests/test_mid.py", "tests/test_short.py"]
    assert written["machine"]

    collected = [ROOT / p for p in ("tests/test_short.py", "tests/new.py", "tests/test_mid.py",
                                    "tests/a/test_long.py", "tests/also_new.py")]  # fmt: skip
    keys = longest_first(collected, seconds)
    ordered = sorted(collected, key=lambda p: keys[p])  # stable, as conftest sorts the items
    assert [p.relative_to(ROOT).as_posix() for p in ordered] == [
        "tests/new.py",
        "tests/also_new.py",
        "tests/a/test_long.py",
        "tests/test_mid.py",
        "tests/test_short.py",
    ]


def test_the_torch_files_are_one_unit_placed_by_their_sum():
    assert scope("tests/export/test_hf_import.py") == scope("tests/train/test_eval_model.py")
    assert scope("tests/exporting/test_x.py") == "tests/exporting/test_x.py"
    assert scope("tests/train/test_loop.py") == "tests/train/test_loop.py"
    seconds = {"tests/export/test_a.py": 4.0, "tests/test_mid.py": 6.0,
               "tests/train/test_eval_model.py": 3.0, "tests/test_short.py": 0.5}  # fmt: skip
    collected = [ROOT / p for p in seconds]
    keys = longest_first(collected, seconds)
    ordered = sorted(collected, key=lambda p: keys[p])
    assert [p.relative_to(ROOT).as_posix() for p in ordered] == [
        "tests/export/test_a.py",  # 4 + 3 s together, before the 6 s file
        "tests/train/test_eval_model.py",
        "tests/test_mid.py",
        "tests/test_short.py",
    ]


# What a test module imports when it uses torch, transformers or open_clip: the packages, the
# export code (which imports transformers when it runs), or the export tests' lazy modules.
TORCH_MODULES = ("torch", "transformers", "open_clip", "safetensors", "vljax.export")
TORCH_HELPERS = {"torch", "transformers", "import_open_clip"}  # in tests/export/helpers.py


def imports_torch(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
            if node.module == "tests.export.helpers":
                if TORCH_HELPERS & {alias.name for alias in node.names}:
                    return True
        else:
            continue
        if any(m == t or m.startswith(t + ".") for m in modules for t in TORCH_MODULES):
            return True
    return False


def test_every_test_module_that_imports_torch_is_one_of_the_torch_files():
    assert imports_torch("from vljax.export.hf_export import export_params")
    assert imports_torch("from tests.export.helpers import torch, tiny_config")
    assert not imports_torch("from tests.export.helpers import tiny_config\nimport torchvision")
    found = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("test_*.py")
        if imports_torch(path.read_text())
    }
    assert "tests/train/test_eval_model.py" in found
    outside = sorted(name for name in found if scope(name) != scope(TORCH_FILES[0]))
    assert not outside, f"add {outside} to TORCH_FILES in tests/file_order.py (torch on one worker)"


def test_a_damaged_table_names_the_fix(tmp_path):
    table = tmp_path / "file_seconds.json"
    assert file_seconds(table) == {}
    table.write_text('{"machine": "x"')
    with pytest.raises(ValueError, match="--write-file-seconds`, or delete it"):
        file_seconds(table)
    table.write_text('{"machine": "x"}')
    with pytest.raises(ValueError, match="not a table of test-file seconds"):
        file_seconds(table)
