"""The params a new run starts from: `config.init_from`, a vljax run directory (its newest
checkpoint that restores) or a folder written by `vljax import` (params.safetensors).
`config.init_from_include` restricts what is taken (e.g. `["^img/"]`: LiT's image tower)."""

import os

from vljax.errors import ConfigError
from vljax.params_io import load_flat
from vljax.train.checkpoint import load_run

IMPORTED_PARAMS = "params.safetensors"


def initial_params(config):
    """Host params from config.init_from, or None when it is unset."""
    path = config.init_from
    if not path:
        return None
    if os.path.exists(os.path.join(path, IMPORTED_PARAMS)):
        return load_flat(os.path.join(path, IMPORTED_PARAMS))
    if os.path.isdir(os.path.join(path, "checkpoints")):
        return load_run(path).params
    raise ConfigError(
        f"config.init_from = {path!r} is neither a vljax run directory (checkpoints/) nor a "
        f"folder written by `vljax import` ({IMPORTED_PARAMS})"
    )
