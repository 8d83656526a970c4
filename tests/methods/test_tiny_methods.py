"""Methods' smoke runs: each `:tiny` recipe trains 60 steps with a finite, falling loss
(FLIP's and SyCoCa's in test_stochastic_resume.py, CoCa's in test_coca_method.py)."""

import pytest

from tests.methods.runs import assert_trained_60_steps
from vljax import cli


@pytest.mark.parametrize("recipe", ["lit", "filip", "long_clip", "negnce"])
def test_tiny_recipe_trains_60_steps_with_a_finite_falling_loss(recipe, tmp_path):
    """LiT: a random locked image tower, the text tower learning to match it. FILIP: the
    late-interaction loss. Long-CLIP: long and short captions (shapes_long), 36 positions.
    NegNCE: the "negnce" term in place of "contrastive"."""
    argv = ["train", "--config", f"configs/{recipe}.py:tiny", "--workdir", str(tmp_path)]
    assert cli.main(argv) == 0
    assert_trained_60_steps(tmp_path)
