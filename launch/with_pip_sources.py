"""Run a `uv pip install` command with this machine's pip package sources added (the Makefile).

uv reads neither pip.conf nor the PIP_* variables, so a machine whose pip is set up with local
wheels or indexes (a CPU build of torch, say) would send uv to PyPI alone. This passes pip's
find-links, index URLs and constraint files on, and pip's rule for several indexes: the best
version from any of them (uv's own default takes the first index that has the package).
Run with the Python that creates the venv; adds nothing where pip has no such settings.

    python3 launch/with_pip_sources.py .venv/bin/uv pip install --python .venv/bin/python -e .
"""

import os
import subprocess
import sys

# pip config keys that uv takes as options of the same name; one value may hold several
# whitespace-separated entries.
SOURCE_KEYS = ("index-url", "extra-index-url", "find-links", "constraint")


def pip_config_listing():
    """What `pip config list` prints: lines like `global.find-links='/opt/wheels'`."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout


def uv_arguments(listing):
    """uv options for the settings in a `pip config list` listing, each entry once."""
    arguments, seen = [], set()
    for line in listing.splitlines():
        name, _, quoted = line.partition("=")
        key, value = name.rpartition(".")[2], quoted.strip("'\"")
        option = f"--{key}"
        for entry in value.split() if key in SOURCE_KEYS else ():
            if (option, entry) not in seen:
                seen.add((option, entry))
                arguments += [option, entry]
    if any(option.endswith("index-url") for option in arguments):
        arguments += ["--index-strategy", "unsafe-best-match"]
    return arguments


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python3 launch/with_pip_sources.py UV_COMMAND... (see the docstring)")
    command = sys.argv[1:] + uv_arguments(pip_config_listing())
    os.execv(command[0], command)
