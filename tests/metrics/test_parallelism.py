"""Parallelism metrics: tokens per forward from the recorded counts, and accuracy under parallelism."""

from __future__ import annotations

import numpy as np
import pytest

from parallel_decoding.metrics.parallelism import accuracy_under_parallelism, aup_interval, group_parallelism


def _group(strategy, group_id, generated, forwards, n):
    return {"strategy": strategy, "group_id": group_id, "n_questions": n,
            "efficiency": {"generated_tokens": generated, "forward_passes": forwards}}


def test_tokens_per_forward_per_group_and_per_branch():
    rows = [_group("independent", "g1", 12, 12, 3), _group("independent", "g2", 8, 8, 2),
            _group("batch", "g1", 12, 4, 3), _group("batch", "g2", 8, 5, 2),
            _group("api", "g1", 12, 0, 3)]
    out = group_parallelism(rows, {})
    assert out["independent"]["tokens_per_forward"]["mean"] == 1.0
    assert out["independent"]["tokens_per_forward_per_branch"]["mean"] == pytest.approx(20 / (12 * 3 + 8 * 2),
                                                                                          abs=1e-4)
    assert out["batch"]["nfe"] == 9 and out["batch"]["nfe_per_question"] == pytest.approx(9 / 5, abs=1e-6)
    assert out["batch"]["tokens_per_forward"]["mean"] == pytest.approx(20 / 9, abs=1e-4)
    assert out["batch"]["tokens_per_forward_per_branch"]["mean"] == pytest.approx(20 / (4 * 3 + 5 * 2), abs=1e-4)
    # two groups that differ (3.0 vs 1.6 tokens per call): the interval spans what resampling them can give
    two = out["batch"]["tokens_per_forward"]
    assert 1.6 <= two["ci_low"] < two["mean"] < two["ci_high"] <= 3.0
    more = group_parallelism([_group("batch", f"g{i}", 12 + i, 4 + i % 3, 3) for i in range(12)], {})
    interval = more["batch"]["tokens_per_forward"]
    assert 0 < interval["ci_low"] < interval["mean"] < interval["ci_high"]
    assert out["api"]["tokens_per_forward"] is None  # no forward passes counted: undefined, not zero
    # rows without n_questions take the count of answered questions
    legacy = [{**_group("batch", "g1", 6, 2, 0), "n_questions": None}]
    assert group_parallelism(legacy, {("batch", "g1"): 3})["batch"]["tokens_per_forward_per_branch"]["mean"] == 1.0


def test_aup_is_the_normalised_trapezoid():
    # (1, 0.5), (2, 0.5), (4, 0.2): area 0.5 * 1 + (0.5 + 0.2) / 2 * 2 = 1.2 over the range 3
    out = accuracy_under_parallelism([4, 1, 2], [0.2, 0.5, 0.5])
    assert out == {"aup": pytest.approx(0.4), "area": pytest.approx(1.2), "degree_min": 1.0, "degree_max": 4.0,
                   "points": 3}
    assert accuracy_under_parallelism([1, 3, 5], [0.3, 0.3, 0.3])["aup"] == pytest.approx(0.3)
    assert accuracy_under_parallelism([1, 1, 2], [0.2, 0.4, 0.6])["aup"] == pytest.approx(0.45)  # same degree averaged
    assert accuracy_under_parallelism([2, 2], [0.1, 0.2]) is None
    assert accuracy_under_parallelism([1, None, 2], [0.5, 0.9, None]) is None


def test_aup_interval_covers_the_true_aup_about_95_percent_of_the_time():
    """Simulation: 4 settings of 12 groups x 3 questions with known hit rates; the true AUP is the trapezoid of
    the true rates. A 95% interval should cover it in about 95% of trials (400 trials: +-2.2% at 2 se)."""
    rng = np.random.default_rng(7)
    degrees, rates = [1, 2, 4, 8], np.array([0.7, 0.6, 0.45, 0.3])
    truth = np.trapezoid(rates, degrees) / (degrees[-1] - degrees[0])
    covered, trials = 0, 400
    for trial in range(trials):
        points = []
        for degree, rate in zip(degrees, rates):
            group_rates = np.clip(rate + rng.normal(0, 0.15, 12), 0, 1)  # groups differ: clustered answers
            hits = rng.binomial(3, group_rates)
            points.append((degree, hits, np.full(12, 3)))
        low, high = aup_interval(points, n_resamples=1000, seed=trial)
        point = accuracy_under_parallelism(degrees, [h.sum() / c.sum() for _, h, c in points])["aup"]
        assert low <= point <= high
        covered += low <= truth <= high
    assert 0.91 <= covered / trials <= 0.99


def test_aup_interval_edges():
    same = [(1, [2, 2], [2, 2]), (2, [1, 1], [2, 2])]  # every group alike: no spread to resample
    assert aup_interval(same) == pytest.approx((0.75, 0.75))
    assert aup_interval([(1, [1, 0], [1, 1])]) is None  # one degree: no AUP
    assert aup_interval([(1, [1], [1]), (2, [0, 1], [1, 1])]) is None  # a one-group job has no spread to resample
    # replicates at one degree are averaged, as the point estimate does
    low, high = aup_interval([(1, [1, 1], [1, 1]), (1, [0, 0], [1, 1]), (3, [1, 0, 1], [1, 1, 1])])
    assert low <= 0.5 * (0.5 + 2 / 3) <= high
