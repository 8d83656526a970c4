"""Weighted mixtures of sources as one random-access source (checkpointable by index).

`MixtureSource({"tfds:a": src_a, "tfds:b": src_b}, {"tfds:a": 0.7, "tfds:b": 0.3})`: index k
belongs to component `schedule[k % P]`, a fixed pattern of P = 1,000 slots in which each
component holds round(weight * P) slots spread evenly (smooth weighted round robin). Within a
component, its j-th slot overall reads example `j % len(component)`, so components cycle
independently. The length is the smallest multiple of P that shows every component's examples
at least once, e.g. a 0.3 share of 3,000 examples -> 10,000 indices. The pipeline's sampler
shuffles these indices globally with the run's seed, so the state of a mixture is just the
sampler's position: resume is exact.
"""

from __future__ import annotations

import math

import numpy as np

from vljax.errors import DataError

PERIOD = 1000


def smooth_schedule(weights: list[float], period: int = PERIOD) -> np.ndarray:
    """Component per slot; counts are the largest-remainder rounding of weights * period."""
    w = np.asarray(weights, np.float64)
    w = w / w.sum()
    counts = np.floor(w * period).astype(int)
    for j in np.argsort(-(w * period - counts))[: period - counts.sum()]:
        counts[j] += 1
    current = np.zeros(len(w))
    out = np.empty(period, np.int32)
    for t in range(period):  # smooth weighted round robin: evenly spread slots
        current += counts
        j = int(np.argmax(current))
        current[j] -= period
        out[t] = j
    return out


class MixtureSource:
    def __init__(self, parts: dict, weights: dict, seed: int = 0):
        if set(parts) != set(weights):
            raise DataError("mixture parts and weights name different datasets")
        bad = {k: v for k, v in weights.items() if not (float(v) > 0)}
        if bad:
            raise DataError(f"mixture weights must be > 0, got {bad}")
        self.names = list(parts)
        self.parts = [parts[n] for n in self.names]
        self.weights = [float(weights[n]) for n in self.names]
        self.schedule = smooth_schedule(self.weights)
        self.slot_counts = np.bincount(self.schedule, minlength=len(self.parts))
        if (self.slot_counts == 0).any():
            tiny = [n for n, c in zip(self.names, self.slot_counts, strict=True) if c == 0]
            raise DataError(f"mixture weights too small to ever draw from {tiny} (< 1/{PERIOD})")
        # prefix[j][t]: slots of component j before position t of the pattern.
        onehot = self.schedule[None, :] == np.arange(len(self.parts))[:, None]
        self.prefix = np.concatenate(
            [np.zeros((len(self.parts), 1), np.int64), np.cumsum(onehot, 1)], 1
        )
        periods = max(
            math.ceil(len(p) / c) for p, c in zip(self.parts, self.slot_counts, strict=True)
        )
        self._len = periods * PERIOD

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{n}: {w:g} {p!r}"
            for n, w, p in zip(self.names, self.weights, self.parts, strict=True)
        )
        return f"MixtureSource({{{parts}}})"

    def locate(self, index: int) -> tuple[int, int]:
        """index -> (component, index within the component)."""
        index = int(index)
        if not 0 <= index < self._len:
            raise IndexError(f"index {index} out of range for a mixture of {self._len}")
        q, r = divmod(index, PERIOD)
        j = int(self.schedule[r])
        nth = q * int(self.slot_counts[j]) + int(self.prefix[j, r])
        return j, nth % len(self.parts[j])

    def __getitem__(self, index: int):
        j, i = self.locate(index)
        return self.parts[j][i]
