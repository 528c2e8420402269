"""Small-sample statistics for sweeps: bootstrap intervals of a mean, paired differences across seeds, seeds won.

Few seeds (3 to 5) make any interval wide; these functions say so honestly rather than hide it: with one value
the interval is that value, with none it is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def _values(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return arr[~np.isnan(arr)]


def bootstrap_ci(
    values: Sequence[float], confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (NaN for no values; the value itself for one)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    arr = _values(values)
    if arr.size == 0:
        return (math.nan, math.nan)
    if arr.size == 1 or np.all(arr == arr[0]):
        return (float(arr[0]), float(arr[0]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_resamples, arr.size))  # (n_resamples, n)
    means = arr[idx].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return (float(low), float(high))


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and bootstrap interval of one cell's values."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float]:
        """Plain dict (n_seeds, mean, std, ci_low, ci_high)."""
        return {"n_seeds": self.n, "mean": self.mean, "std": self.std, "ci_low": self.ci_low, "ci_high": self.ci_high}


def summarise(values: Sequence[float], confidence: float = 0.95, seed: int = 0) -> Summary:
    """Mean, std (ddof 1; 0 for one value) and bootstrap interval of `values`, NaNs ignored."""
    arr = _values(values)
    if arr.size == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    low, high = bootstrap_ci(arr, confidence=confidence, seed=seed)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return Summary(int(arr.size), float(arr.mean()), std, low, high)


@dataclass(frozen=True)
class Paired:
    """Paired difference `method - baseline` over the seeds both have."""

    n: int
    diff: float  # mean of per-seed differences
    ci_low: float
    ci_high: float
    won: int  # seeds where method > baseline
    tied: int
    lost: int

    def to_dict(self) -> dict[str, float]:
        """Plain dict with the summary.csv column names."""
        return {
            "n_paired": self.n,
            "paired_diff": self.diff,
            "paired_ci_low": self.ci_low,
            "paired_ci_high": self.ci_high,
            "seeds_won": self.won,
            "seeds_tied": self.tied,
            "seeds_lost": self.lost,
        }


def paired_difference(
    method: Mapping[int, float], baseline: Mapping[int, float], confidence: float = 0.95, seed: int = 0
) -> Paired:
    """Paired difference of two {seed: value} maps over their common seeds, with a bootstrap interval and seeds won."""
    seeds = sorted(
        s
        for s in set(method) & set(baseline)
        if method[s] is not None and baseline[s] is not None and not (math.isnan(method[s]) or math.isnan(baseline[s]))
    )
    if not seeds:
        return Paired(0, math.nan, math.nan, math.nan, 0, 0, 0)
    d = np.array([method[s] - baseline[s] for s in seeds], dtype=float)
    low, high = bootstrap_ci(d, confidence=confidence, seed=seed)
    return Paired(
        n=len(seeds),
        diff=float(d.mean()),
        ci_low=low,
        ci_high=high,
        won=int((d > 0).sum()),
        tied=int((d == 0).sum()),
        lost=int((d < 0).sum()),
    )


def seeds_won(method: Mapping[int, float], baseline: Mapping[int, float]) -> int:
    """How many common seeds `method` beat `baseline` on (strictly)."""
    return paired_difference(method, baseline).won


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (successes of n): honest at small n and near 0 or 1; NaN for n = 0."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    if n <= 0:
        return (math.nan, math.nan)
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At 0 or n successes the bound is exactly 0 or 1 (rounding would leave 1e-17 there).
    return (0.0 if successes <= 0 else centre - half, 1.0 if successes >= n else centre + half)
