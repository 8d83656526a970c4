"""Files that are whole or absent: written to a temporary sibling, then renamed into place,
so a crash mid-write leaves the previous version (or nothing), never half a file."""

import os
import tempfile


def write_text(path: str, text: str):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def save_figure(fig, path: str, **kwargs):
    """matplotlib's savefig, atomically; the format comes from `path`'s extension."""
    folder = os.path.dirname(os.path.abspath(path))
    fmt = os.path.splitext(path)[1].lstrip(".") or "png"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
    os.close(fd)
    try:
        fig.savefig(tmp, format=fmt, **kwargs)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise
