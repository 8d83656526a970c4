"""Flax linen models; `build_model(config.model)` picks the module from the config."""

from vljax.models.layers import stack_layers, unstack_layers
from vljax.models.two_tower import TwoTower


def build_model(model_config):
    """Returns the two-tower flax Module for `config.model` (a ConfigDict or a plain dict)."""
    cfg = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
    return TwoTower(config=_freeze(cfg))


def _freeze(d):
    # Flax module attributes must be hashable; a ConfigDict / dict is not.
    from flax.core import FrozenDict

    return FrozenDict({k: _freeze(v) if isinstance(v, dict) else v for k, v in d.items()})


__all__ = ["build_model", "stack_layers", "unstack_layers", "TwoTower"]
