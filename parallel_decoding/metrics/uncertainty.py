"""Uncertainty of a strategy's mean score, and of the difference between two strategies, with groups as the unit.

Questions of one group share a passage (and, for the parallel strategies, a decoding run), so their scores are
correlated: resampling questions would pretend to more information than there is. Everything here resamples
**groups** (a cluster bootstrap) and keeps the reported figure what ``results.json`` has always shown, the mean
over questions, i.e. the ratio ``sum of scores / number of questions`` over the resampled groups.

- ``ratio_intervals`` / ``cluster_intervals``: 95% intervals. Default ``expanded``: the percentile interval of
  the group bootstrap taken at the wider level ``Phi(-sqrt(G / (G - 1)) t_{G-1, 0.975})`` (Hesterberg 2015, "What
  teachers should know about the bootstrap"), because the plain ``percentile`` interval is too narrow with few
  groups. Simulated coverage of a nominal 95% (binary scores in groups of 2-6 questions sharing a Beta success
  rate, 600-1000 trials each): percentile 85% with 5 groups, 91% with 10, 93% with 20; expanded 90.5% with 4,
  92% with 5, 95% with 10, 96% with 20 (``tests/metrics/test_uncertainty.py`` checks 20). ``studentized``
  (bootstrap-t, each resample standardised by its cluster-robust standard error
  ``sqrt(G / (G - 1) * sum_g (S_g - m n_g)^2) / sum_g n_g``) covers >= 95% from 4 groups, but where most groups
  score alike, resamples without spread make it unbounded (taken to ``bounds``: e.g. EM 0.63 [0, 0.69] with 6
  groups, 5 of them at 2/3), so it is an option, not the default. Below ~10 groups read intervals as rough.
  Scores with no spread between groups give the point as interval; fewer than two groups give no interval
  (``None``).
- ``paired_comparison``: a strategy against a reference on the questions both answered: the mean difference,
  its cluster-bootstrap interval (the same resampling on per-question differences) and a two-sided p-value from
  an exact (up to ``2**G <= n_resamples``) sign-flip permutation test over groups: under the null the two
  strategies' group totals are exchangeable within each group, so swapping them group by group (flipping the sign
  of the group's difference) gives the null distribution of the difference; the same test as
  ``scipy.stats.permutation_test(permutation_type="samples")`` with one pair per group (checked against it), in
  one matrix product instead of a call per metric. The interval and the p-value come from two procedures and
  may disagree at the margin.

Resampling draws multinomial group weights once per call (``numpy.random.default_rng(seed)``), so every metric of
a call sees the same resamples, and the output is a function of the rows and the seed alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000  # bootstrap resamples: Monte Carlo error of a 95% endpoint ~ 0.01 se
N_PERMUTATIONS = 9999  # permutation-test resamples; exact enumeration when 2**groups is not larger
SEED = 0
METHODS = ("expanded", "studentized", "percentile")


@dataclass(frozen=True)
class Interval:
    mean: float
    ci_low: float | None
    ci_high: float | None

    def to_dict(self, digits: int = 6) -> dict[str, float | None]:
        """Rounded; an endpoint that is unbounded (few groups and no ``bounds``) is ``None``, as JSON has no inf."""
        return {k: None if v is None or not np.isfinite(v) else round(float(v), digits)
                for k, v in (("mean", self.mean), ("ci_low", self.ci_low), ("ci_high", self.ci_high))}


def group_totals(values: np.ndarray, groups: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    """Per-group sums ``(G, M)`` of the ``(N, M)`` per-question values and the questions per group ``(G,)``."""
    _, index = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    values = np.asarray(values, dtype=float).reshape(len(index), -1)
    sums = np.zeros((index.max() + 1 if len(index) else 0, values.shape[1]))
    np.add.at(sums, index, values)
    return sums, np.bincount(index).astype(float)


def _robust_se(sums: np.ndarray, counts: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Cluster-robust (linearised) standard error of ``sum S / sum n``; ``weights`` ``(B, G)`` = resamples."""
    g = sums.shape[0]
    if weights is None:
        weights = np.ones((1, g))
    total_n = weights @ counts  # (B,)
    mean = (weights @ sums) / total_n[:, None]  # (B, M)
    # sum_g w (S - m n)^2 expanded, so that every resample is three matrix products
    raw = weights @ sums ** 2
    squares = raw - 2 * mean * (weights @ (sums * counts[:, None])) + mean ** 2 * (weights @ counts ** 2)[:, None]
    squares[squares <= 1e-9 * raw] = 0.0  # cancellation noise of the expansion, not spread
    return np.sqrt(np.clip(squares, 0.0, None) * g / (g - 1)) / total_n[:, None]


def ratio_intervals(sums: np.ndarray, counts: np.ndarray, *, confidence: float = CONFIDENCE,
                    n_resamples: int = N_RESAMPLES, method: str = "expanded", seed: int = SEED,
                    bounds: tuple[float, float] | None = None) -> list[Interval]:
    """Intervals of ``sum_g S_g / sum_g n_g`` for each column of ``sums`` ``(G, M)``, resampling groups."""
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}; one of {METHODS}")
    sums = np.asarray(sums, dtype=float).reshape(len(counts), -1)
    counts = np.asarray(counts, dtype=float)
    g, m = sums.shape
    if g == 0 or counts.sum() == 0:
        return [Interval(0.0, None, None) for _ in range(m)]
    point = sums.sum(0) / counts.sum()
    if g < 2:
        return [Interval(float(p), None, None) for p in point]
    weights = np.random.default_rng(seed).multinomial(g, np.full(g, 1.0 / g), size=n_resamples).astype(float)
    boot = (weights @ sums) / (weights @ counts)[:, None]  # (B, M)
    alpha = (1.0 - confidence) / 2
    if method in ("percentile", "expanded"):
        if method == "expanded":  # Hesterberg's small-sample expansion: sqrt(G / (G - 1)) and t with G - 1 df
            alpha = float(stats.norm.cdf(-np.sqrt(g / (g - 1)) * stats.t.ppf(1 - alpha, g - 1)))
        low, high = np.quantile(boot, [alpha, 1 - alpha], axis=0)
    else:
        se = _robust_se(sums, counts)[0]
        se_boot = _robust_se(sums, counts, weights)
        scale = np.maximum(np.abs(point), 1.0) * 1e-12
        low, high = point.copy(), point.copy()
        for j in range(m):
            if se[j] <= scale[j]:
                continue  # every group scores the same: so does every resample
            # A resample of groups that all score alike has no spread: its t is +-inf (0 at the point itself).
            # Dropping those would drop one side of the distribution; keeping them widens a few-group interval
            # up to the bounds instead, the honest answer when a handful of groups decide the figure.
            delta = boot[:, j] - point[j]
            flat = se_boot[:, j] <= scale[j]
            unbounded = np.where(np.abs(delta) <= scale[j], 0.0, np.where(delta > 0, np.inf, -np.inf))
            t = np.where(flat, unbounded, delta / np.where(flat, 1.0, se_boot[:, j]))
            t_low, t_high = np.quantile(t, alpha, method="lower"), np.quantile(t, 1 - alpha, method="higher")
            low[j], high[j] = point[j] - t_high * se[j], point[j] - t_low * se[j]
    if bounds is not None:
        low, high = np.clip(low, *bounds), np.clip(high, *bounds)
    return [Interval(float(p), float(lo), float(hi)) for p, lo, hi in zip(point, low, high)]


def cluster_intervals(values: np.ndarray, groups: Sequence[Hashable], **options) -> list[Interval]:
    """Intervals of the mean of each column of per-question ``values`` ``(N, M)``, resampling ``groups``."""
    sums, counts = group_totals(values, groups)
    return ratio_intervals(sums, counts, **options)


def sign_flip_pvalue(sums_a: np.ndarray, sums_b: np.ndarray, *, n_resamples: int = N_PERMUTATIONS,
                     seed: int = SEED) -> np.ndarray:
    """Two-sided p-values (one per column) of the paired permutation test of ``sum A - sum B`` over groups: every
    sign pattern of the group differences when ``2**G <= n_resamples`` (exact, as ``scipy.stats.permutation_test``
    with ``permutation_type="samples"`` does), else ``n_resamples`` random ones (``(1 + hits) / (1 + n)``)."""
    diffs = np.asarray(sums_a, float) - np.asarray(sums_b, float)
    diffs = diffs.reshape(diffs.shape[0], -1)  # (G, M)
    g = diffs.shape[0]
    if g < 2:
        return np.ones(diffs.shape[1])
    exact = 2 ** g <= n_resamples
    observed = np.abs(diffs.sum(0))
    tolerance = 1e-9 * np.maximum(1.0, observed)  # float sums of the same terms in another order
    if exact:
        signs = 1.0 - 2.0 * ((np.arange(2 ** g)[:, None] >> np.arange(g)) & 1)
        return np.minimum((np.abs(signs @ diffs) >= observed - tolerance).mean(0), 1.0)
    rng, hits = np.random.default_rng(seed), np.zeros(diffs.shape[1])
    for start in range(0, n_resamples, 1000):  # chunks: thousands of groups stay a few MB at a time
        signs = rng.choice([-1.0, 1.0], size=(min(1000, n_resamples - start), g))
        hits += (np.abs(signs @ diffs) >= observed - tolerance).sum(0)
    return np.minimum((hits + 1) / (n_resamples + 1), 1.0)


def paired_comparison(a: np.ndarray, b: np.ndarray, groups: Sequence[Hashable], names: Sequence[str], *,
                      seed: int = SEED, **options) -> dict[str, dict[str, float | None]]:
    """``{metric: {diff, ci_low, ci_high, p_value}}`` for ``a - b``: per-question scores ``(N, M)`` of two
    strategies on the same questions (row i of ``a`` and ``b`` is the same question of group ``groups[i]``)."""
    a, b = np.asarray(a, float).reshape(len(groups), -1), np.asarray(b, float).reshape(len(groups), -1)
    intervals = cluster_intervals(a - b, groups, seed=seed, **options)
    sums_a, _ = group_totals(a, groups)
    sums_b, _ = group_totals(b, groups)
    pvalues = sign_flip_pvalue(sums_a, sums_b, seed=seed)
    out = {}
    for name, interval, p in zip(names, intervals, pvalues):
        entry = interval.to_dict()
        out[name] = {"diff": entry["mean"], "ci_low": entry["ci_low"], "ci_high": entry["ci_high"],
                     "p_value": round(float(p), 6)}
    return out
