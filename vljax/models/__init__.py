"""Flax linen models. A method (vljax/methods) builds its model from `config.model`."""

from vljax.models.layers import freeze, stack_layers, unstack_layers
from vljax.models.two_tower import TwoTower

__all__ = ["freeze", "stack_layers", "unstack_layers", "TwoTower"]
