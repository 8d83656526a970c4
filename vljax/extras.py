"""Optional dependencies (pyproject.toml's extras): one check, before any work, that names
the extra to install when a command needs one."""

from __future__ import annotations

import importlib.util

from vljax.errors import ConfigError

# extra -> the modules it provides. `make demo` installs none of them: export's are most of
# the install time, and only video prepares read video files.
EXTRAS = {
    "export": ("torch", "transformers", "safetensors"),
    "video": ("av",),
}


def require_extra(extra: str, command: str) -> None:
    """Raises ConfigError naming the pip command when a module of `extra` is not installed."""
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"`{command}` needs {', '.join(missing)} (the {extra} extra); install it with "
            f"`pip install -e '.[{extra}]'` (or `make test`, which installs it)"
        )
