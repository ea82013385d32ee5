"""How much parallel work one model call does, and how accuracy holds up as it grows.

Per (strategy, group), from the counts every strategy already records (``EfficiencyStats``):

- **NFE** (number of function evaluations) = ``forward_passes``: model calls, one prefill or decode step of a
  batch counting once (the backend's forward hook; a diffusion step with classifier-free guidance counts once).
- **tokens per forward** (per group) = ``generated_tokens / forward_passes``: tokens the group gets per model
  call. Autoregressive decoding of one question at a time gives 1 (every call, the prefill included, yields one
  token); a batch or the shared-prefix engine approach the number of questions decoded together (less when rows
  finish early or a shared prefix is prefilled apart); a diffusion sampler can exceed it.
- **tokens per forward per branch** = ``generated_tokens / (forward_passes x questions of the group)``: how far
  one branch (question) advances per model call of its group. 1 = every branch gets a token per call (a batch
  decoded together), 1/G = branches wait for one another (``independent``), above 1 = several tokens per branch
  per call (Fast-dLLM's "tokens per forward" when the group is decoded as one batch).

Over a run these are ratios of sums over groups (so long groups weigh more), with cluster-bootstrap intervals
(``metrics/uncertainty.py``); a backend that counts no forward passes (``backend=api``) gives ``None``.

**Accuracy under parallelism** (AUP) of a sweep: a strategy's accuracy ``a(d)`` at each swept degree of
parallelism ``d`` (the group size of a group-size sweep, or the measured tokens per forward of e.g. a threshold
sweep), joined by straight lines: ``area = trapezoid(a, d)`` over ``[d_min, d_max]`` and
``aup = area / (d_max - d_min)``, the mean accuracy over the range of parallelism the strategy was run at (in
[0, 1]; equal accuracy everywhere gives that accuracy). Read it with the range: the raw ``area`` also rewards
reaching a wider range. Points at the same degree are averaged first; fewer than two distinct degrees give no AUP.

Its 95% interval (``aup_interval``) resamples groups within each job (setting) independently, as each job drew
its own groups, recomputes every job's accuracy, the same averaging and the same trapezoid, and takes the
percentile interval of the resampled AUPs; the degrees stay as measured.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from parallel_decoding.metrics.uncertainty import CONFIDENCE, N_RESAMPLES, SEED, ratio_intervals


def group_parallelism(group_rows: Sequence[dict[str, Any]], question_counts: dict[tuple[str, str], int]
                      ) -> dict[str, dict[str, Any]]:
    """``{strategy: {nfe, nfe_per_question, tokens_per_forward, tokens_per_forward_per_branch}}`` from the rows of
    ``groups.jsonl``; ``question_counts`` (strategy, group id) -> answered questions, for rows without the count."""
    per_strategy: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for row in group_rows:
        e = row["efficiency"]
        n = row.get("n_questions") or question_counts.get((row["strategy"], row["group_id"]), 0)
        per_strategy[row["strategy"]].append((float(e["generated_tokens"]), float(e["forward_passes"]), float(n)))
    out = {}
    for strategy, items in per_strategy.items():
        tokens, forwards, questions = (np.array(column) for column in zip(*items))
        entry: dict[str, Any] = {"nfe": int(forwards.sum()),
                                 "nfe_per_question": round(forwards.sum() / questions.sum(), 6)
                                 if questions.sum() else None}
        if forwards.sum() > 0:
            per_group = ratio_intervals(tokens, forwards, bounds=(0.0, np.inf))[0]
            per_branch = ratio_intervals(tokens, forwards * questions, bounds=(0.0, np.inf))[0]
            entry["tokens_per_forward"] = per_group.to_dict(4)
            entry["tokens_per_forward_per_branch"] = per_branch.to_dict(4)
        else:
            entry["tokens_per_forward"] = entry["tokens_per_forward_per_branch"] = None
        out[strategy] = entry
    return out


def accuracy_under_parallelism(degrees: Sequence[float], accuracies: Sequence[float]) -> dict[str, Any] | None:
    """``{aup, area, degree_min, degree_max, points}`` of one strategy's sweep (definition in the module doc)."""
    pairs = [(float(d), float(a)) for d, a in zip(degrees, accuracies) if d is not None and a is not None]
    by_degree: dict[float, list[float]] = defaultdict(list)
    for d, a in pairs:
        by_degree[d].append(a)
    if len(by_degree) < 2:
        return None
    xs = np.array(sorted(by_degree))
    ys = np.array([np.mean(by_degree[x]) for x in xs])
    area = float(np.trapezoid(ys, xs))
    return {"aup": round(area / float(xs[-1] - xs[0]), 6), "area": round(area, 6), "degree_min": float(xs[0]),
            "degree_max": float(xs[-1]), "points": len(xs)}


def aup_interval(points: Sequence[tuple[float, Sequence[float], Sequence[float]]], *,
                 confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                 seed: int = SEED) -> tuple[float, float] | None:
    """Percentile interval of the AUP from per-job ``(degree, per-group accuracy sums, per-group counts)``
    (definition in the module doc); None with fewer than two degrees or a job of fewer than two groups."""
    by_degree: dict[float, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for degree, sums, counts in points:
        if degree is None:
            continue
        by_degree[float(degree)].append((np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)))
    jobs = [job for degree in by_degree for job in by_degree[degree]]
    if len(by_degree) < 2 or any(len(counts) < 2 or counts.sum() == 0 for _, counts in jobs):
        return None
    rng = np.random.default_rng(seed)
    xs = np.array(sorted(by_degree))
    curves = []
    for x in xs:  # each degree: the mean over its jobs of their resampled accuracies, (B,)
        accuracies = []
        for sums, counts in by_degree[x]:
            weights = rng.multinomial(len(counts), np.full(len(counts), 1.0 / len(counts)), size=n_resamples)
            accuracies.append((weights @ sums) / np.maximum(weights @ counts, 1e-12))
        curves.append(np.mean(accuracies, axis=0))
    aups = np.trapezoid(np.stack(curves, axis=-1), xs, axis=-1) / float(xs[-1] - xs[0])
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(aups, [alpha, 1 - alpha])
    return float(low), float(high)
