"""The few-shot ridge probe against a direct numpy solution, and the eval entry."""

import ml_collections
import numpy as np
import pytest
from test_multilingual_retrieval import HashEncoder

from vljax.config import load_config
from vljax.errors import ConfigError
from vljax.evals import fewshot
from vljax.evals.run import run_evals


def direct_ridge(x, labels, classes, l2):
    """The augmented normal equations with an unpenalised bias column, by np.linalg.solve."""
    x1 = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    targets = 2.0 * (labels[:, None] == classes[None, :]) - 1.0
    penalty = l2 * np.diag(np.r_[np.ones(x.shape[1]), 0.0])
    wb = np.linalg.solve(x1.T @ x1 + penalty, x1.T @ targets)
    return wb[:-1], wb[-1]


def clusters(rng, n_per_class, classes=3, dim=6, noise=0.8):
    centres = rng.normal(size=(classes, dim))
    labels = np.repeat(np.arange(classes), n_per_class)
    x = centres[labels] + noise * rng.normal(size=(len(labels), dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


@pytest.mark.parametrize("n_per_class", [2, 5])  # fewer rows than dims (dual form), and more
def test_ridge_fit_equals_direct_solve(n_per_class):
    x, labels = clusters(np.random.default_rng(0), n_per_class)
    classes = np.arange(3)
    grid = (1e-3, 0.1, 10.0)
    for (w, b), l2 in zip(fewshot.ridge_fit(x, labels, classes, grid), grid, strict=True):
        w_ref, b_ref = direct_ridge(x, labels, classes, l2)
        np.testing.assert_allclose(w, w_ref, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(b, b_ref, rtol=1e-7, atol=1e-9)


def test_accuracies_follow_the_documented_protocol():
    rng = np.random.default_rng(1)
    train_x, train_y = clusters(rng, 12)
    eval_x, eval_y = clusters(np.random.default_rng(1), 12, noise=1.0)  # same centres
    shots, grid = (1, 3, 5), (1e-3, 1e-1, 10.0)
    got = fewshot.fewshot_accuracies(
        train_x, train_y, eval_x, eval_y, shots, grid, holdout_per_class=4, trials=2, seed=7
    )
    classes = np.arange(3)
    for k in shots:
        accs = []
        for trial in range(2):
            # The shuffle the docstring describes, per class, in label order.
            trial_rng = np.random.default_rng(7 + trial)
            orders = [trial_rng.permutation(np.flatnonzero(train_y == c)) for c in classes]
            idx = np.concatenate([o[:k] for o in orders])
            held = np.concatenate([o[5:9] for o in orders])
            held_acc, eval_acc = [], []
            for l2 in grid:
                w, b = direct_ridge(train_x[idx], train_y[idx], classes, l2)
                held_acc.append(np.mean(np.argmax(train_x[held] @ w + b, 1) == train_y[held]))
                eval_acc.append(np.mean(np.argmax(eval_x @ w + b, 1) == eval_y))
            best = max(i for i, a in enumerate(held_acc) if a == max(held_acc))
            accs.append(eval_acc[best])
        assert got[k] == pytest.approx(np.mean(accs), abs=1e-12)
    assert got[5] > 0.5  # separable enough that the check is not vacuous
    again = fewshot.fewshot_accuracies(
        train_x, train_y, eval_x, eval_y, shots, grid, holdout_per_class=4, trials=2, seed=7
    )
    assert again == got  # seeded: the same shots every time


def test_fewshot_eval_entry_and_errors():
    config = load_config("configs/demo.py")
    entry = dict(type="fewshot", dataset="shapes:zeroshot", size=48, train_dataset=
                 "shapes:zeroshot", train_size=96, shots=[1, 2], trials=1)  # fmt: skip
    config.evals = ml_collections.ConfigDict({"fs": entry})
    results = run_evals(config, HashEncoder(), step=0)
    assert set(results) == {"step", "fewshot/fs/1shot", "fewshot/fs/2shot"}
    assert all(0 <= results[f"fewshot/fs/{k}shot"] <= 1 for k in (1, 2))
    # 96 examples of 24 classes: 4 per class, so 4 shots leave none to pick the l2 with.
    config.evals.fs.shots = [1, 4]
    with pytest.raises(ConfigError, match="4 shots need at least 5 .* lower config.evals.fs"):
        run_evals(config, HashEncoder(), step=0)
    del config.evals.fs["train_dataset"]
    with pytest.raises(ConfigError, match="needs train_dataset"):
        run_evals(config, HashEncoder(), step=0)
