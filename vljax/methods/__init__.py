"""Methods as plug-ins: `config.method` names a module `vljax/methods/<name>.py` whose
`METHOD` (a `Method`, see method.py) the trainer, evals and export call.

The names are listed once, in `vljax.choices.METHODS` (validated before any work).
"""

import importlib

from vljax.choices import METHODS, expected
from vljax.errors import ConfigError
from vljax.methods.method import LossContext, Method, dot_similarity


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"config.method={name!r}: expected {expected(METHODS)}")
    return importlib.import_module(f"vljax.methods.{name}").METHOD


__all__ = ["LossContext", "Method", "dot_similarity", "get_method"]
