"""Methods' smoke runs: each `:tiny` recipe, shortened to SMOKE_STEPS steps (the objectives'
recipes at their own 60: tests/methods/runs.py), trains with a finite, falling loss (FLIP's in
test_stochastic_resume.py, CoCa's in test_coca_method.py, SyCoCa's and Long-CLIP's in
test_tiny_two_input_methods.py, video_clip's in test_video_clip_method.py: one file per
worker's share of the time)."""

import pytest

from tests.methods.runs import RECIPE_STEPS, SMOKE_STEPS, assert_trained_smoke_steps, smoke_train

# The objectives' recipes train the 60 steps of their `:tiny` (tests/methods/runs.py).
OBJECTIVES = ("negnce", "tpm_cl", "m2_encoder", "one_to_k", "multi_positive")


@pytest.mark.parametrize(
    "recipe", ["lit", "filip", "negnce", "tpm_cl", "m2_encoder", "one_to_k", "multi_positive"]
)
def test_tiny_recipe_trains_with_a_finite_falling_loss(recipe, tmp_path, capsys):
    """LiT: a random locked image tower, the text tower learning to match it. FILIP: the
    late-interaction loss. NegNCE: the "negnce" term in place of "contrastive". TPM-CL: the
    "tpm_cl" term beside it (the text tower also embeds the masked captions). M2-Encoder,
    1-to-K, multi-positive: K captions per image (English and Chinese; sampled sentences, some
    absent), terms "per_caption" and "one_to_k". Each on SMOKE_MESH, 2 of the 8 devices."""
    steps = RECIPE_STEPS if recipe in OBJECTIVES else SMOKE_STEPS
    assert smoke_train(recipe, tmp_path, steps=steps) == 0
    assert_trained_smoke_steps(tmp_path, steps)
    assert "mesh {'data': 2, 'fsdp': 1, 'tensor': 1} on 2 of 8 devices" in capsys.readouterr().out
