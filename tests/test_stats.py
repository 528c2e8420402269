import math

import numpy as np
import pytest

from cod.eval.stats import bootstrap_ci, paired_difference, seeds_won, summarise


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    small = rng.normal(0.7, 0.05, size=5)
    large = rng.normal(0.7, 0.05, size=200)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s <= small.mean() <= hi_s
    assert lo_l <= large.mean() <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s)
    assert 0.6 < lo_l < 0.7 < hi_l < 0.8


def test_bootstrap_ci_is_seeded_and_handles_degenerate_inputs():
    values = [0.5, 0.6, 0.9]
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci([0.42]) == (0.42, 0.42)
    assert bootstrap_ci([0.3, 0.3, 0.3]) == (0.3, 0.3)
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert bootstrap_ci([0.5, float("nan"), 0.7])[0] >= 0.5
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(values, confidence=1.5)


def test_summarise_gives_mean_sample_std_and_interval():
    s = summarise([0.6, 0.7, 0.8])
    assert s.n == 3
    assert s.mean == pytest.approx(0.7)
    assert s.std == pytest.approx(0.1)
    assert 0.6 - 1e-9 <= s.ci_low <= 0.7 <= s.ci_high <= 0.8 + 1e-9
    assert summarise([0.5]).std == 0.0
    assert summarise([]).n == 0 and math.isnan(summarise([]).mean)
    assert set(s.to_dict()) == {"n_seeds", "mean", "std", "ci_low", "ci_high"}


def test_paired_difference_uses_common_seeds_and_counts_wins():
    method = {0: 0.70, 1: 0.60, 2: 0.80, 3: 0.50, 7: 0.99}
    baseline = {0: 0.60, 1: 0.65, 2: 0.70, 3: 0.50, 5: 0.10}
    p = paired_difference(method, baseline)
    assert p.n == 4  # seeds 5 and 7 are unpaired
    assert p.diff == pytest.approx((0.10 - 0.05 + 0.10 + 0.0) / 4)
    assert (p.won, p.tied, p.lost) == (2, 1, 1)
    assert p.ci_low <= p.diff <= p.ci_high
    assert seeds_won(method, baseline) == 2
    assert paired_difference({0: 1.0}, {1: 0.0}).n == 0


def test_paired_interval_excludes_zero_for_a_consistent_gain():
    baseline = {s: 0.5 + 0.01 * s for s in range(8)}
    method = {s: v + 0.05 + 0.002 * (s % 3) for s, v in baseline.items()}
    p = paired_difference(method, baseline)
    assert p.won == 8 and p.ci_low > 0
