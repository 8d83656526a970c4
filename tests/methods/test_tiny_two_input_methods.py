"""Smoke runs of the methods whose batches carry more than one text or image view: SyCoCa
(CoCa's terms plus the masked-image term on a re-encoded masked image) and Long-CLIP (long and
short captions from shapes_long, 36 text positions). Each `:tiny` trains 60 steps with a
finite, falling loss."""

import pytest

from tests.methods.runs import assert_trained_60_steps
from vljax import cli


@pytest.mark.parametrize("recipe", ["sycoca", "long_clip"])
def test_tiny_recipe_trains_60_steps_with_a_finite_falling_loss(recipe, tmp_path):
    argv = ["train", "--config", f"configs/{recipe}.py:tiny", "--workdir", str(tmp_path)]
    assert cli.main(argv) == 0
    assert_trained_60_steps(tmp_path)
