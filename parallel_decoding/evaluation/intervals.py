"""The uncertainty and parallelism sections of ``results.json``, computed from the same rows as the means.

Each strategy entry of ``summarize`` gains:

- ``intervals``: ``{metric: {mean, ci_low, ci_high}}``, 95% cluster-bootstrap intervals over groups
  (``metrics/uncertainty.py``; ``mean`` is the figure in ``metrics``; ``ci_*`` null with fewer than 2 groups);
- ``paired`` (every strategy but the reference): ``{reference, n_groups, n_questions, metrics: {metric: {diff,
  ci_low, ci_high, p_value}}}``, this strategy minus the reference on the questions both answered (paired group
  bootstrap interval, sign-flip permutation p-value over groups);
- ``parallelism``: NFE and tokens per forward per group and per branch (``metrics/parallelism.py``), plus
  ``sampler_tokens_per_forward`` where a strategy reports its own per-row counts (``llada``).

The reference is the first strategy of the run (the first in ``strategies=[...]``) unless one is named.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from parallel_decoding.evaluation.judge import JUDGE_DIMENSIONS
from parallel_decoding.metrics.parallelism import group_parallelism
from parallel_decoding.metrics.uncertainty import cluster_intervals, paired_comparison

SCORE_BOUNDS = (0.0, 1.0)  # every metric set scores answers in [0, 1]
JUDGE_BOUNDS = (1.0, 5.0)  # judge scores are 1-5


def _judge_scores(judgement: dict[str, float]) -> dict[str, float]:
    scores = {f"judge_{d}": float(judgement[d]) for d in JUDGE_DIMENSIONS}
    scores["judge_mean"] = sum(scores.values()) / len(JUDGE_DIMENSIONS)
    return scores


def _intervals(rows: list[tuple[str, dict[str, float]]], names: list[str], bounds) -> dict[str, dict]:
    if not rows or not names:
        return {}
    values = np.array([[scores[k] for k in names] for _, scores in rows])
    found = cluster_intervals(values, [g for g, _ in rows], bounds=bounds)
    return {name: interval.to_dict() for name, interval in zip(names, found)}


def add_uncertainty(summary: dict[str, Any], prediction_rows: Sequence[dict], scores: dict[str, list[dict]],
                    group_rows: Sequence[dict], reference: str | None = None) -> dict[str, Any]:
    """Add ``intervals``, ``paired`` and ``parallelism`` to every strategy entry of ``summary`` (in place).
    ``scores[strategy]`` are the per-question scores in the order of that strategy's prediction rows."""
    keyed: dict[str, dict[tuple[str, str], dict[str, float]]] = defaultdict(dict)  # for pairing questions
    listed: dict[str, list[tuple[str, dict[str, float]]]] = defaultdict(list)  # every row, as the means count them
    judged: dict[str, list[tuple[str, dict[str, float]]]] = defaultdict(list)
    position: dict[str, int] = defaultdict(int)
    for row in prediction_rows:
        strategy = row["strategy"]
        keyed[strategy][(str(row["group_id"]), str(row["question_id"]))] = scores[strategy][position[strategy]]
        listed[strategy].append((str(row["group_id"]), scores[strategy][position[strategy]]))
        position[strategy] += 1
        if row.get("judge"):
            judged[strategy].append((str(row["group_id"]), _judge_scores(row["judge"])))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in prediction_rows:
        counts[(row["strategy"], row["group_id"])] += 1
    parallelism = group_parallelism(group_rows, counts)
    reference = reference if reference in summary else next(iter(summary), None)
    for strategy, entry in summary.items():
        names = [k for k in entry["metrics"] if not k.startswith("judge_")]
        entry["intervals"] = {**_intervals(listed[strategy], names, SCORE_BOUNDS),
                              **_intervals(judged[strategy], [k for k in entry["metrics"] if k.startswith("judge_")],
                                           JUDGE_BOUNDS)}
        entry["parallelism"] = parallelism.get(strategy, {})
        extra = entry.get("extra") or {}
        if extra.get("row_forward_passes"):
            entry["parallelism"]["sampler_tokens_per_forward"] = round(
                extra["decoded_tokens"] / extra["row_forward_passes"], 4)
        if strategy != reference and reference is not None:
            entry["paired"] = _paired(keyed[strategy], keyed[reference], names, reference)
    return summary


def _paired(own: dict, ref: dict, names: list[str], reference: str) -> dict[str, Any]:
    common = [key for key in own if key in ref]
    names = [k for k in names if common and k in ref[common[0]]]
    result: dict[str, Any] = {"reference": reference, "n_groups": len({g for g, _ in common}),
                              "n_questions": len(common), "metrics": {}}
    if common and names:
        a = np.array([[own[key][k] for k in names] for key in common])
        b = np.array([[ref[key][k] for k in names] for key in common])
        result["metrics"] = paired_comparison(a, b, [g for g, _ in common], names, bounds=(-1.0, 1.0))
    return result
