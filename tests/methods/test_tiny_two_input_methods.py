"""Smoke runs of the methods whose batches carry more than one text or image view: SyCoCa
(CoCa's terms plus the masked-image term on a re-encoded masked image) and Long-CLIP (long and
short captions from shapes_long, 36 text positions). Each `:tiny` recipe, shortened to
SMOKE_STEPS steps (tests/methods/runs.py), trains with a finite, falling loss."""

import pytest

from tests.methods.runs import assert_trained_smoke_steps, smoke_train


@pytest.mark.parametrize("recipe", ["sycoca", "long_clip"])
def test_tiny_recipe_trains_with_a_finite_falling_loss(recipe, tmp_path):
    assert smoke_train(recipe, tmp_path) == 0
    assert_trained_smoke_steps(tmp_path)
