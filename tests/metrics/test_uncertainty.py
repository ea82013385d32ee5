"""Cluster-bootstrap intervals and the paired permutation test, against simulation, brute force and scipy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from parallel_decoding.metrics.uncertainty import (
    cluster_intervals,
    group_totals,
    paired_comparison,
    ratio_intervals,
    sign_flip_pvalue,
)


def _clustered_trial(rng, groups, mean=0.4):
    """Binary scores of ``groups`` groups of 2-6 questions sharing a group-level success rate (Beta, mean 0.4):
    the ratio estimator's target is E[n p] / E[n] = 0.4 since sizes and rates are independent."""
    sizes = rng.integers(2, 7, groups)
    rates = rng.beta(2, 2 * (1 - mean) / mean, groups)
    return rng.binomial(sizes, rates).astype(float), sizes.astype(float)


def _binomial_band(p, trials, k=3.5):
    sd = math.sqrt(p * (1 - p) / trials)
    return p - k * sd, p + k * sd


@pytest.mark.parametrize("groups, method", [(20, "expanded"), (20, "studentized"), (5, "studentized")])
def test_95_percent_interval_covers_the_true_mean_95_percent_of_the_time(groups, method):
    # 400 synthetic trials of correlated groups: the coverage estimate has binomial sd
    # sqrt(.95 * .05 / 400) = 0.011; accept 3.5 sd either side (a correct method fails this 1 time in 2000).
    rng, trials, hits = np.random.default_rng(11), 400, 0
    for trial in range(trials):
        sums, sizes = _clustered_trial(rng, groups)
        interval = ratio_intervals(sums, sizes, seed=trial, n_resamples=1000, bounds=(0.0, 1.0), method=method)[0]
        hits += interval.ci_low <= 0.4 <= interval.ci_high
    low, high = _binomial_band(0.95, trials)
    assert low <= hits / trials <= high, hits / trials


def test_question_level_resampling_would_under_cover_what_groups_cover():
    # The same clustered data with every question its own group (an i.i.d. bootstrap) covers clearly less than
    # 95%: the design matters, and the group resampling is what fixes it.
    rng, trials, hits = np.random.default_rng(5), 200, 0
    for trial in range(trials):
        sizes = np.full(20, 6)
        rates = rng.beta(1, 1.5, 20)
        sums = rng.binomial(sizes, rates).astype(float)
        values = np.concatenate([np.r_[np.ones(int(s)), np.zeros(6 - int(s))] for s in sums])
        interval = cluster_intervals(values, np.arange(len(values)), seed=trial, n_resamples=400)[0]
        hits += interval.ci_low <= 0.4 <= interval.ci_high
    assert hits / trials < _binomial_band(0.95, trials)[0]


def test_unclustered_percentile_interval_agrees_with_scipy_bootstrap():
    rng = np.random.default_rng(3)
    x = rng.normal(0.5, 0.3, 60)
    ours = cluster_intervals(x, np.arange(60), method="percentile", n_resamples=20000, seed=1)[0]
    theirs = stats.bootstrap((x,), np.mean, method="percentile", n_resamples=20000, rng=np.random.default_rng(2))
    se = x.std(ddof=1) / math.sqrt(60)
    assert ours.mean == pytest.approx(x.mean())
    # two independent Monte Carlo runs of 20000 resamples: their 2.5% quantiles differ by ~0.02 se
    assert ours.ci_low == pytest.approx(theirs.confidence_interval.low, abs=0.08 * se)
    assert ours.ci_high == pytest.approx(theirs.confidence_interval.high, abs=0.08 * se)


def test_unclustered_studentized_interval_is_the_t_interval_for_normal_data():
    rng = np.random.default_rng(4)
    x = rng.normal(2.0, 1.0, 400)
    ours = cluster_intervals(x, np.arange(400), n_resamples=20000, seed=0, method="studentized")[0]
    low, high = stats.t.interval(0.95, 399, loc=x.mean(), scale=stats.sem(x))
    assert ours.ci_low == pytest.approx(low, abs=0.05 * stats.sem(x))
    assert ours.ci_high == pytest.approx(high, abs=0.05 * stats.sem(x))


def test_group_totals_and_degenerate_cases():
    sums, counts = group_totals(np.array([[1.0], [0.0], [1.0]]), ["b", "a", "b"])
    assert sums.ravel().tolist() == [0.0, 2.0] and counts.tolist() == [1.0, 2.0]
    one = cluster_intervals(np.array([1.0, 0.0]), ["g", "g"])[0]
    assert (one.mean, one.ci_low, one.ci_high) == (0.5, None, None)  # one group: no interval
    flat = cluster_intervals(np.zeros(6), [0, 0, 1, 1, 2, 2])[0]
    assert (flat.ci_low, flat.ci_high) == (0.0, 0.0)  # no spread observed
    # 3 groups, two alike: bootstrap-t resamples of those two alone have no spread; they widen the interval
    # (unbounded without bounds), where the default stays within the groups' own rates (0.5 and 1)
    values, ids = np.array([1.0, 0, 1, 0, 1, 1]), [0, 0, 1, 1, 2, 2]
    few = cluster_intervals(values, ids, bounds=(0, 1), method="studentized")[0]
    assert few.ci_low < few.mean < few.ci_high
    assert cluster_intervals(values, ids, method="studentized")[0].to_dict()["ci_low"] is None
    default = cluster_intervals(values, ids)[0]
    assert 0.5 <= default.ci_low < default.mean < default.ci_high <= 1.0
    clipped = cluster_intervals(np.array([1, 1, 1, 1, 1, 0, 1, 1.0]), [0, 0, 1, 1, 2, 2, 3, 3], bounds=(0, 1))[0]
    assert clipped.ci_high <= 1.0
    seeded = [cluster_intervals(np.arange(8.0), [0, 0, 1, 1, 2, 2, 3, 3], seed=7)[0] for _ in range(2)]
    assert seeded[0] == seeded[1]
    with pytest.raises(ValueError):
        ratio_intervals(np.ones(3), np.ones(3), method="bca")
    # large samples: the expansion vanishes and the default is the percentile interval
    x = np.random.default_rng(1).normal(size=300)
    expanded = cluster_intervals(x, np.arange(300), seed=3)[0]
    percentile = cluster_intervals(x, np.arange(300), seed=3, method="percentile")[0]
    assert expanded.ci_low == pytest.approx(percentile.ci_low, abs=0.01 * np.std(x))


def test_sign_flip_pvalue_agrees_with_scipy_permutation_test():
    rng = np.random.default_rng(8)
    for groups in (5, 9, 12, 20):  # exact up to 2**13 sign patterns, Monte Carlo beyond
        a, b = rng.integers(0, 6, groups).astype(float), rng.integers(0, 6, groups).astype(float)
        ours = sign_flip_pvalue(a, b, seed=1)[0]
        theirs = stats.permutation_test((a, b), lambda x, y, axis: np.sum(x - y, axis=axis), vectorized=True,
                                        permutation_type="samples", n_resamples=9999,
                                        rng=np.random.default_rng(2)).pvalue
        # exact: equal; Monte Carlo (20 groups): two runs of 9999 differ by a few binomial sd (<= 0.005 each)
        assert ours == pytest.approx(theirs, abs=1e-12 if 2 ** groups <= 9999 else 0.02), groups
        if groups <= 12:  # and the brute-force enumeration, independent of both
            flips = np.array(list(itertools.product([1.0, -1.0], repeat=groups)))
            assert ours == pytest.approx(np.mean(np.abs(flips @ (a - b)) >= abs((a - b).sum()) - 1e-9))


def _paired_trial(rng, groups, effect):
    """Two strategies on the same questions: per-question scores around a shared group difficulty (the groups'
    correlation), ``b`` shifted by ``effect`` (so the true mean of ``a - b`` is ``-effect``)."""
    sizes = rng.integers(2, 6, groups)
    difficulty = np.repeat(rng.uniform(0.2, 0.8, groups), sizes)
    ids = np.repeat(np.arange(groups), sizes)
    a = difficulty + rng.normal(0, 0.2, len(ids))
    b = difficulty + effect + rng.normal(0, 0.2, len(ids))
    return a, b, ids


def test_paired_test_keeps_its_false_positive_rate_under_the_null():
    # 400 null trials of 12 groups: false-positive rate at alpha = 0.05 within 3.5 binomial sd (0.011) of alpha
    rng, trials = np.random.default_rng(21), 400
    rejected = sum(paired_comparison(*_paired_trial(rng, 12, 0.0), ["f1"], seed=t)["f1"]["p_value"] < 0.05
                   for t in range(trials))
    low, high = _binomial_band(0.05, trials)
    assert low <= rejected / trials <= high, rejected / trials


def test_paired_test_detects_a_planted_difference():
    rng, trials = np.random.default_rng(22), 100
    found = [paired_comparison(*_paired_trial(rng, 12, 0.2), ["f1"], seed=t)["f1"] for t in range(trials)]
    assert sum(f["p_value"] < 0.05 for f in found) >= 90  # b - a = +0.2: a - b is negative
    assert all(f["diff"] < 0 for f in found)
    covered = sum(f["ci_low"] <= -0.2 <= f["ci_high"] for f in found)
    assert covered >= 100 * _binomial_band(0.95, 100)[0]  # the paired interval covers the planted effect


def test_paired_comparison_of_identical_strategies():
    a = np.array([[1.0, 0.5], [0.0, 0.2], [1.0, 1.0], [0.0, 0.0]])
    out = paired_comparison(a, a.copy(), ["g1", "g1", "g2", "g3"], ["em", "f1"])
    assert out["em"] == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}
