"""The malloc settings (vljax/host_malloc.py): environment handling, the re-exec, and the
page faults they remove, counted by the kernel (getrusage) rather than timed."""

import os
import platform
import subprocess
import sys

import pytest

from vljax.host_malloc import MALLOC_TUNABLES, OPT_OUT, with_malloc_tunables

glibc_linux = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="glibc tunables exist only on Linux with glibc",
)

# Allocates, fills and frees a 64 MB block ten times through libc (as XLA's CPU runtime
# does); prints the minor page faults of the last nine.
FAULTS = """
import ctypes, resource
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def touch():
    block = libc.malloc(1 << 26)
    ctypes.memset(block, 1, 1 << 26)
    libc.free(block)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(9):
    touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", OPT_OUT)}
    return env


@glibc_linux
def test_settings_are_added_once_and_never_override_the_users():
    env = with_malloc_tunables(clean_env())
    assert env["GLIBC_TUNABLES"] == MALLOC_TUNABLES
    assert with_malloc_tunables(env)["GLIBC_TUNABLES"] == MALLOC_TUNABLES
    other = with_malloc_tunables({**clean_env(), "GLIBC_TUNABLES": "glibc.rtld.nns=8"})
    assert other["GLIBC_TUNABLES"] == "glibc.rtld.nns=8:" + MALLOC_TUNABLES
    own = {**clean_env(), "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    assert with_malloc_tunables(own)["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"
    opted_out = with_malloc_tunables({**clean_env(), OPT_OUT: "1"})
    assert "GLIBC_TUNABLES" not in opted_out


@glibc_linux
def test_reexec_restarts_the_same_command_with_the_settings():
    code = (
        "from vljax.host_malloc import reexec_with_malloc_tunables as r; r(); import os, sys; "
        "print(os.environ['GLIBC_TUNABLES'], sys.argv[1:])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "a b", "c"],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"{MALLOC_TUNABLES} ['a b', 'c']"


@glibc_linux
def test_launcher_removes_the_page_faults_of_repeated_large_allocations():
    def faults(launcher):
        cmd = [*launcher, sys.executable, "-c", FAULTS]
        return int(subprocess.run(cmd, env=clean_env(), capture_output=True, text=True,
                                  check=True).stdout)  # fmt: skip

    fresh = faults([])
    kept = faults([sys.executable, "-m", "vljax.host_malloc"])
    # Without the settings every 64 MB allocation is new mmap'd memory: 16,384 faults of
    # 4 KiB pages each time. With them the freed block is reused.
    assert fresh > 9 * 10_000
    assert kept < fresh / 20
