"""Methods' smoke runs: each `:tiny` recipe trains 60 steps with a finite, falling loss
(FLIP's in test_stochastic_resume.py, CoCa's in test_coca_method.py, SyCoCa's and
Long-CLIP's in test_tiny_two_input_methods.py: one file per worker's share of the time)."""

import pytest

from tests.methods.runs import assert_trained_60_steps
from vljax import cli


@pytest.mark.parametrize("recipe", ["lit", "filip", "negnce"])
def test_tiny_recipe_trains_60_steps_with_a_finite_falling_loss(recipe, tmp_path):
    """LiT: a random locked image tower, the text tower learning to match it. FILIP: the
    late-interaction loss. NegNCE: the "negnce" term in place of "contrastive"."""
    argv = ["train", "--config", f"configs/{recipe}.py:tiny", "--workdir", str(tmp_path)]
    assert cli.main(argv) == 0
    assert_trained_60_steps(tmp_path)
