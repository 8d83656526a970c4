"""Few-shot linear probe on frozen image embeddings (big_vision's few-shot evaluator):
closed-form ridge regression, k shots per class, keys `fewshot/<key>/<k>shot`.

```python
config.evals.pets_fewshot = dict(
    type="fewshot",
    dataset="tfds:pets:test",          # labelled eval split: the accuracy is measured here
    train_dataset="tfds:pets:train",   # labelled split the shots and the held-out part come from
    shots=[1, 5, 10, 25],              # default
    l2_grid=[1e-4, 1e-3, ..., 1e3],    # default: DEFAULT_L2_GRID
    holdout_per_class=5, trials=3, seed=0, train_size=None,   # defaults
)
```

For each trial t (seed + t) every class's training examples are shuffled once
(`np.random.default_rng(seed + t).permutation`, classes in increasing label order): its first
k are the k shots (so the 5 shots include the 1 shot), the `holdout_per_class` after the
largest k are held out (the same for every k; fewer when the class has fewer spare examples,
at least one). Embeddings are L2-normalised. For each k and each regularisation `l2` of the
grid, `ridge_fit` solves

    min_{W, b}  || X W + 1 b^T - T ||^2 + l2 ||W||^2

on the shots (X [k C, D] embeddings, T [k C, C] targets 2 * one-hot - 1, as big_vision; the
bias b is not penalised), in closed form: with X, T centred on the shots' means,
W = (X^T X + l2 I)^{-1} X^T T (or X^T (X X^T + l2 I)^{-1} T when k C < D, the same matrix),
b = mean(T) - W^T mean(X). The prediction is the argmax of x W + b. The `l2` with the best
accuracy on the held-out examples is kept (ties: the largest), and the key is the accuracy on
the eval split with it, averaged over the trials.
"""

from __future__ import annotations

import jax
import numpy as np

from vljax.data.evalsets import load_eval_set
from vljax.errors import ConfigError, DataError

DEFAULT_SHOTS = (1, 5, 10, 25)
DEFAULT_L2_GRID = tuple(10.0**p for p in range(-4, 4))  # 1e-4 .. 1e3
HOLDOUT_PER_CLASS = 5
TRIALS = 3


def ridge_fit(x, labels, classes, l2_grid):
    """[(W [D, C], b [C]) for each l2 of `l2_grid`] of the ridge problem in the module
    docstring, in float64. x: [N, D]; labels: int [N], each in `classes` (int [C])."""
    x = np.asarray(x, np.float64)
    targets = 2.0 * (np.asarray(labels)[:, None] == np.asarray(classes)[None, :]) - 1.0
    x_mean, t_mean = x.mean(axis=0), targets.mean(axis=0)
    xc, tc = x - x_mean, targets - t_mean
    # One eigendecomposition serves every l2 of the grid (big_vision's trick); the smaller of
    # the two Gram matrices is decomposed.
    if len(x) >= x.shape[1]:
        eigs, q = np.linalg.eigh(xc.T @ xc)
        lhs, rhs = q, q.T @ (xc.T @ tc)
    else:
        eigs, q = np.linalg.eigh(xc @ xc.T)
        lhs, rhs = xc.T @ q, q.T @ tc
    out = []
    for l2 in l2_grid:
        w = (lhs / (eigs + float(l2))[None, :]) @ rhs
        out.append((w, t_mean - x_mean @ w))
    return out


def predict(x, w, b, classes):
    return np.asarray(classes)[np.argmax(np.asarray(x, np.float64) @ w + b, axis=1)]


def sample_shots(labels, classes, shots, holdout_per_class, seed):
    """({k: indices of the k shots of every class}, indices held out) for one trial."""
    rng = np.random.default_rng(seed)
    largest = max(shots)
    picked = {k: [] for k in shots}
    held = []
    for c in classes:
        order = rng.permutation(np.flatnonzero(labels == c))
        for k in shots:
            picked[k].append(order[:k])
        held.append(order[largest : largest + holdout_per_class])
    return {k: np.concatenate(v) for k, v in picked.items()}, np.concatenate(held)


def fewshot_accuracies(
    train_emb,
    train_labels,
    eval_emb,
    eval_labels,
    shots=DEFAULT_SHOTS,
    l2_grid=DEFAULT_L2_GRID,
    holdout_per_class=HOLDOUT_PER_CLASS,
    trials=TRIALS,
    seed=0,
) -> dict:
    """{k: eval accuracy} (see the module docstring). Raises ValueError for shots a class
    cannot supply (ConfigError through `fewshot_eval`)."""
    train_emb, eval_emb = _unit_rows(train_emb), _unit_rows(eval_emb)
    train_labels, eval_labels = np.asarray(train_labels), np.asarray(eval_labels)
    classes, counts = np.unique(train_labels, return_counts=True)
    largest = max(shots)
    if counts.min() <= largest:
        c = classes[np.argmin(counts)]
        raise ValueError(
            f"{largest} shots need at least {largest + 1} training examples of every class "
            f"({largest} shots and one held out to pick the regularisation); class {c} has "
            f"{counts.min()}"
        )
    accuracy = {k: [] for k in shots}
    for trial in range(trials):
        picked, held = sample_shots(train_labels, classes, shots, holdout_per_class, seed + trial)
        for k in shots:
            fits = ridge_fit(train_emb[picked[k]], train_labels[picked[k]], classes, l2_grid)
            held_acc = [
                np.mean(predict(train_emb[held], w, b, classes) == train_labels[held])
                for w, b in fits
            ]
            best = len(held_acc) - 1 - int(np.argmax(held_acc[::-1]))  # ties: the largest l2
            w, b = fits[best]
            accuracy[k].append(np.mean(predict(eval_emb, w, b, classes) == eval_labels))
    return {k: float(np.mean(v)) for k, v in accuracy.items()}


def _unit_rows(x):
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fewshot_eval(name: str, spec, config, encoder, data, cache: dict) -> dict:
    """The `fewshot` eval entry `name` on its loaded eval split `data` (run.run_evals)."""
    key = spec.get("key", None) or name
    where = f"config.evals.{name}"
    shots = tuple(spec.get("shots", None) or DEFAULT_SHOTS)
    l2_grid = tuple(spec.get("l2_grid", None) or DEFAULT_L2_GRID)
    holdout = int(spec.get("holdout_per_class", HOLDOUT_PER_CLASS))
    trials = int(spec.get("trials", TRIALS))
    if not all(isinstance(k, int) and k >= 1 for k in shots):
        raise ConfigError(f"{where}.shots must be whole numbers >= 1, e.g. [1, 5, 10, 25]")
    if not all(float(x) > 0 for x in l2_grid):
        raise ConfigError(f"{where}.l2_grid must hold regularisations > 0")
    if holdout < 1 or trials < 1:
        raise ConfigError(f"{where}.holdout_per_class and .trials must be >= 1")
    train_spec = spec.get("train_dataset", None)
    if not train_spec:
        raise ConfigError(
            f"{where} needs train_dataset, the labelled split the shots come from (e.g. "
            "tfds:NAME:train from `vljax prepare ... --label-from-dir`)"
        )
    if (name, "train") not in cache:
        entry = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
        train_entry = {**entry, "dataset": train_spec, "size": entry.get("train_size")}
        cache[(name, "train")] = load_eval_set(train_entry, config)
    train = cache[(name, "train")]
    for split, labels in ((train_spec, train["labels"]), (spec.get("dataset"), data["labels"])):
        if labels is None:
            raise DataError(f"{where}: {split} has no labels; the few-shot probe needs classes")
    missing = sorted(set(np.unique(data["labels"]).tolist()) - set(train["labels"].tolist()))
    if missing:
        raise DataError(
            f"{where}: classes {missing[:10]} of {spec.get('dataset')} have no examples in "
            f"{train_spec}; use a train split with every class"
        )
    embeddings = [encoder.encode_images(train["images"]), encoder.encode_images(data["images"])]
    if any(not isinstance(e, np.ndarray | jax.Array) or e.ndim != 2 for e in embeddings):
        raise ConfigError(
            f"{where}: the few-shot probe needs one embedding vector per image; method "
            f"{encoder.method.name!r} embeds images otherwise"
        )
    try:
        acc = fewshot_accuracies(
            embeddings[0], train["labels"], embeddings[1], data["labels"],
            shots, l2_grid, holdout, trials, int(spec.get("seed", 0)),
        )  # fmt: skip
    except ValueError as e:
        raise ConfigError(
            f"{where}: {e} in {train_spec}; lower {where}.shots or use a larger train split "
            f"({where}.train_size limits it)"
        ) from None
    return {f"fewshot/{key}/{k}shot": v for k, v in acc.items()}
