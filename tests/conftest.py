"""Every test sees 8 fake CPU devices; the flags (tests/xla_flags.py) must be set before jax
is imported.

Tests compile far more than they run, so XLA's CPU backend optimises less
(`--xla_backend_optimization_level=0`: the tiny train step compiles in 5.6 s instead of 10.2
on a 2-core AMD EPYC) and with XLA's older loop emitters and one codegen thread per compile
(`--xla_cpu_use_fusion_emitters=false --xla_cpu_parallel_codegen_split_count=1`: the CoCa
tiny run's compiles took 9.9 s instead of 20.6; the two pytest workers already use both
cores), under XLA's compile-time preset (`--xla_cpu_opt_preset=FAST_COMPILE`), and with no
Python source lines in the programs' debug locations (`JAX_TRACEBACK_IN_LOCATIONS_LIMIT=0`:
less metadata for every XLA pass to carry); the programs compute the same functions. The
last two: about 4% of the suite's CPU seconds (docs/benchmarks.md, "Test suite levers
(2026-12-05, ninth session)").

Compiled programs that took 0.5 s or more to compile go to a persistent cache shared by the
whole session (and the `vljax` processes tests start, through the environment): many tests
train the same tiny config, and on 2 CPU cores compiling a sharded train step costs more
than running it. Smaller programs are not written: their hits saved less than reading them
cost, and writing the 1,900 compiles of a run took about 15 s.

Python's garbage collector runs less: what collection imported (jax, flax, orbax, grain)
is frozen out of its scans (`gc.freeze`), and a collection starts after 20,000 net
allocations instead of 700 (tracing allocates many short-lived objects): in a suite run the
collector took 37 s of 588 CPU s before either. At the end everything is frozen again, so
pytest's last collection has nothing to scan.

pytest-xdist's `--dist loadfile` (`make test`) hands the files that import torch to one
worker as one unit (tests/file_order.py).
"""

import atexit
import gc
import os
import shutil
import tempfile

import pytest

from tests.file_order import FileScheduling, longest_first
from tests.xla_flags import TEST_XLA_FLAGS

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TEST_XLA_FLAGS).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_TRACEBACK_IN_LOCATIONS_LIMIT", "0")

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="vljax-test-jax-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


def pytest_collection_modifyitems(items):
    """Test files in the order of tests/file_order.py (longest first): `make test` keeps it
    (`--no-loadscope-reorder`), so pytest-xdist hands the long files out before the many
    short ones and the two workers finish together."""
    keys = longest_first({item.path for item in items})
    items.sort(key=lambda item: keys[item.path])


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: a run without xdist ignores it
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` with the files that import torch as one unit (tests/file_order.py)."""
    return FileScheduling(config, log) if config.getoption("dist") == "loadfile" else None


def pytest_collection_finish(session):
    """Everything imported so far lives for the whole run: the collector stops scanning it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def pytest_sessionfinish(session):
    """pytest's last garbage collection (after the tests, for unraisable exceptions) then
    scans nothing: each worker's heap of traced programs took about 2 CPU s to scan, at the
    end of the run, when nothing else is left to overlap it."""
    gc.freeze()
