"""glibc malloc settings for XLA on the CPU, applied when the process starts.

XLA's CPU runtime allocates each step's buffers afresh. glibc serves blocks above its mmap
threshold (at most 32 MiB unless raised) with new mmap'd pages and unmaps them on free, so
every step pays a page fault per 4 KiB page of every large buffer: a jitted `x + 1` on a
57 MB array took 21 ms with 13,800 faults per call on a 2-core AMD EPYC, and 7 ms with 44
once freed memory stays in the heap (mmap and trim thresholds raised) on transparent huge
pages (`glibc.malloc.hugetlb=1`, effective where THP is in `madvise` or `always` mode). The
demo's train step is memory-bound in its conv stem and got about 25 % faster
(docs/benchmarks.md, "Host malloc"). The cost: the process keeps its peak heap until it
exits, which a training process does anyway.

glibc reads GLIBC_TUNABLES only at process start, so the `vljax` command re-executes itself
once with them set, and `python -m vljax.host_malloc COMMAND [ARGS...]` runs any command
with them (the Makefile runs pytest so). Nothing changes off glibc, when GLIBC_TUNABLES
already holds malloc settings (the user's own choice wins), or with VLJAX_SYSTEM_MALLOC=1.
"""

import os
import platform
import sys

MALLOC_TUNABLES = (
    "glibc.malloc.hugetlb=1"
    ":glibc.malloc.mmap_threshold=4294967295"
    ":glibc.malloc.trim_threshold=4294967295"
)
OPT_OUT = "VLJAX_SYSTEM_MALLOC"


def needs_malloc_tunables(env) -> bool:
    """Whether a process with environment `env` would start without vljax's malloc settings
    on a system where they apply."""
    return (
        platform.system() == "Linux"
        and platform.libc_ver()[0] == "glibc"
        and env.get(OPT_OUT, "") in ("", "0")
        and "glibc.malloc." not in env.get("GLIBC_TUNABLES", "")
    )


def with_malloc_tunables(env) -> dict:
    """A copy of `env` with MALLOC_TUNABLES appended to GLIBC_TUNABLES where they apply."""
    env = dict(env)
    if needs_malloc_tunables(env):
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), MALLOC_TUNABLES]))
    return env


def reexec_with_malloc_tunables() -> None:
    """Replaces this process by the same command line with the malloc settings, once (the
    new process finds them set); returns when nothing needs to change."""
    if not needs_malloc_tunables(os.environ):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    env = with_malloc_tunables(os.environ)
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        sys.exit("usage: python -m vljax.host_malloc COMMAND [ARGS...]")
    os.execvpe(argv[0], argv, with_malloc_tunables(os.environ))


if __name__ == "__main__":
    main()
