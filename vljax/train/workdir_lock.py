"""One trainer per workdir: an exclusive `flock` on WORKDIR/vljax.lock, held for the run.

The kernel drops the lock when its process dies (even by `kill -9`), so a lock is never
stale; the file keeps the last holder's host and PID, which name the holder when a second
trainer is refused and tell the next trainer that a previous one died holding it. In a
multi-process run only process 0 takes the lock. Eval and export only read a run and take no
lock.
"""

import fcntl
import json
import os
import socket
import time

from vljax.errors import WorkdirLockedError

LOCK_FILE = "vljax.lock"


class WorkdirLock:
    """`with WorkdirLock(workdir):` holds the lock; refuses at once if another trainer does."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, LOCK_FILE)
        self._fd = None

    def __enter__(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise WorkdirLockedError(
                f"{os.path.dirname(self.path)} is in use by another trainer ({holder}); "
                "wait for it to finish or stop it, or use another --workdir"
            ) from None
        previous = _read_holder(fd)
        if previous:
            # A clean exit empties the file, so a holder left in it died while training.
            print(f"Taking over {self.path}: its last holder ({previous}) is no longer running.")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_me()).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def __exit__(self, *exc):
        os.ftruncate(self._fd, 0)  # released cleanly: nobody to report to the next trainer
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


def _read_holder(fd) -> str:
    """'host H, PID P, since T' from the lock file, or '' when it holds nothing."""
    raw = os.pread(fd, 4096, 0)
    if not raw:
        return ""
    try:
        info = json.loads(raw)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        return f"host {info['host']}, PID {info['pid']}, since {since}"
    except (ValueError, KeyError, TypeError):
        return "an unreadable holder record"
