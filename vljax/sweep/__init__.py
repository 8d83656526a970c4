"""Sweeps: many runs of one recipe from one file (configs/ablations/*.py), launched and
summarised by `vljax sweep`. Sweep files use `sweep.product` and `sweep.zip_`."""

from vljax.sweep.spec import NAME_KEY, RECIPE_KEY, Run, load_sweep, product, zip_

__all__ = ["NAME_KEY", "RECIPE_KEY", "Run", "load_sweep", "product", "zip_"]
