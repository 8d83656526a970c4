"""The workers' file order (tests/file_order.py): the measured table that
benchmarks/test_suite.py writes puts the longest files first and unknown files before them;
the files that import torch go to one worker, placed by their sum."""

import json

import pytest

from benchmarks.test_suite import DURATION, write_file_seconds
from tests.file_order import ROOT, file_seconds, longest_first, scope

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


def test_a_damaged_table_names_the_fix(tmp_path):
    table = tmp_path / "file_seconds.json"
    assert file_seconds(table) == {}
    table.write_text('{"machine": "x"')
    with pytest.raises(ValueError, match="--write-file-seconds`, or delete it"):
        file_seconds(table)
    table.write_text('{"machine": "x"}')
    with pytest.raises(ValueError, match="not a table of test-file seconds"):
        file_seconds(table)
