"""Reported vs reproduced: each metric of a run dir as ``(value, low, high)`` and the verdict of a rerun.

``metric_estimates(run_dir)`` is the interface ``reproduce`` compares through:

- an ``evaluate`` run: ``"<strategy>/<metric>"`` -> the value ``results.json`` reports, with the 95% interval of
  the questions' mean from resampling *groups* (questions of one group are correlated), computed from the
  scores of ``predictions.jsonl`` (``group_interval``); plus ``<strategy>/n_questions`` and ``n_groups``, which
  must match exactly (the same questions were answered);
- a ``train`` run: every number of ``val_before`` / ``val_after`` / ``test`` (no interval: they must match within
  ``atol``).

A metric agrees when the values are equal within ``atol``, or, where both runs have intervals, when each value
lies inside the other run's interval; anything else disagrees, and so does a metric present in one run only or
one whose ``results.json`` value is not the mean of its own run's per-question scores (an edited or mixed-up
file: ``INCONSISTENT``).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from parallel_decoding.config import ConfigError
from parallel_decoding.evaluation.recorder import read_jsonl
from parallel_decoding.metrics.metric_sets import score_row
from parallel_decoding.metrics.uncertainty import cluster_intervals

RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.jsonl"


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float | None = None
    high: float | None = None
    recomputed: float | None = None  # the mean of the run's own per-question scores (evaluate runs)

    def consistent(self, atol: float) -> bool:
        return self.recomputed is None or abs(self.recomputed - self.value) <= atol

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def contains(self, x: float, atol: float) -> bool:
        return self.has_interval and self.low - atol <= x <= self.high + atol

    def __str__(self) -> str:
        if not self.has_interval:
            return f"{self.value:.4f}"
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


def group_interval(values: Sequence[float], groups: Sequence[str], **options) -> tuple[float, float] | None:
    """95% interval of the mean of ``values`` resampling whole groups, as ``results.json``'s intervals are
    computed (``metrics.uncertainty``); None when there is no interval (fewer than 2 groups)."""
    [interval] = cluster_intervals(np.asarray(values, dtype=float)[:, None], [str(g) for g in groups], **options)
    if interval.ci_low is None or interval.ci_high is None:
        return None
    return float(interval.ci_low), float(interval.ci_high)


def _read_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} has no {RESULTS_FILE} (the run did not finish)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from err


def _evaluate_estimates(run_dir: Path, results: dict[str, Any]) -> dict[str, Estimate]:
    rows: dict[str, list[dict]] = defaultdict(list)
    for row in read_jsonl(run_dir / PREDICTIONS_FILE):
        rows[row["strategy"]].append(row)
    out: dict[str, Estimate] = {}
    for strategy, entry in results["strategies"].items():
        scores = [score_row(r) for r in rows.get(strategy, [])]
        groups = [r["group_id"] for r in rows.get(strategy, [])]
        for metric, value in entry.get("metrics", {}).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            per_question = [s[metric] for s in scores if metric in s]
            complete = len(per_question) == len(scores) and bool(scores)
            interval = group_interval(per_question, groups) if complete else None
            out[f"{strategy}/{metric}"] = Estimate(float(value), *(interval or (None, None)),
                                                   recomputed=float(np.mean(per_question)) if complete else None)
        for count in ("n_questions", "n_groups"):
            if count in entry:
                out[f"{strategy}/{count}"] = Estimate(float(entry[count]))
    return out


def _train_estimates(results: dict[str, Any]) -> dict[str, Estimate]:
    out = {}
    for section in ("val_before", "val_after", "test"):
        for metric, value in (results.get(section) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out[f"{section}/{metric}"] = Estimate(float(value))
    return out


def metric_estimates(run_dir: str | Path) -> dict[str, Estimate]:
    """Every compared metric of a finished ``evaluate`` or ``train`` run dir."""
    run_dir = Path(run_dir)
    results = _read_results(run_dir)
    if "strategies" in results:
        return _evaluate_estimates(run_dir, results)
    if results.get("status") not in (None, "ok"):
        raise ConfigError(f"{run_dir}: the run failed ({results.get('error')}); nothing to compare")
    return _train_estimates(results)


@dataclass(frozen=True)
class Comparison:
    name: str
    reported: Estimate | None
    reproduced: Estimate | None
    verdict: str  # "exact" | "within intervals" | "DISAGREE" | "INCONSISTENT" | "MISSING"

    @property
    def agrees(self) -> bool:
        return self.verdict in ("exact", "within intervals")


def compare(reported: dict[str, Estimate], reproduced: dict[str, Estimate], atol: float = 1e-6) -> list[Comparison]:
    rows = []
    for name in list(reported) + [n for n in reproduced if n not in reported]:
        a, b = reported.get(name), reproduced.get(name)
        if a is None or b is None:
            verdict = "MISSING"
        elif not (a.consistent(atol) and b.consistent(atol)):
            verdict = "INCONSISTENT"  # results.json differs from the scores of its own predictions.jsonl
        elif abs(a.value - b.value) <= atol:
            verdict = "exact"
        elif a.has_interval and b.has_interval and a.contains(b.value, atol) and b.contains(a.value, atol):
            verdict = "within intervals"
        else:
            verdict = "DISAGREE"
        rows.append(Comparison(name, a, b, verdict))
    return rows


def format_comparison(rows: Sequence[Comparison]) -> str:
    """A plain table (one line per metric), readable in logs and CI output."""
    header = ("metric", "reported [95% CI]", "reproduced [95% CI]", "verdict")
    lines = [(r.name, str(r.reported) if r.reported else "-", str(r.reproduced) if r.reproduced else "-", r.verdict)
             for r in rows]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*line).rstrip() for line in [header, *lines])


def identical_answers(run_a: str | Path, run_b: str | Path) -> dict[str, tuple[int, int]]:
    """Per strategy of an ``evaluate`` run: (answers of ``run_b`` identical to ``run_a``'s raw outputs, questions
    of ``run_a``). Shown beside the verdict: sampling or GPU kernels may change answers while metrics agree."""
    def answers(run: str | Path) -> dict[tuple[str, str, str], str]:
        return {(r["strategy"], str(r["group_id"]), str(r["question_id"])): r.get("raw_output", r["prediction"])
                for r in read_jsonl(Path(run) / PREDICTIONS_FILE)}

    a, b = answers(run_a), answers(run_b)
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for key, text in a.items():
        out[key[0]][1] += 1
        out[key[0]][0] += int(b.get(key) == text)
    return {k: (v[0], v[1]) for k, v in out.items()}
