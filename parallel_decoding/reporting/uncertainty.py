"""The report's uncertainty, seed and parallelism figures, taken from each job's ``results.json``.

- Per (job, strategy) record: each metric's 95% interval (``<metric>_ci_low``/``_ci_high``), the paired
  comparison against the run's reference (``<metric>_diff``, ``_diff_ci_low``/``_high``, ``<metric>_p``), NFE and
  tokens per forward (``evaluation/intervals.py``).
- Seeds: jobs that differ only in a seed override (``-m seed=0,1,2``; ``SEED_KEYS``) are replicates: the report
  shows their mean ± sample sd (``<figure>_sd``, ``n_seeds``) instead of one row per seed.
- Accuracy under parallelism (``metrics/parallelism.py``) per strategy (and backend, in a backend sweep) across
  the swept settings, with its 95% interval resampling each job's groups.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from parallel_decoding.config import ConfigError
from parallel_decoding.metrics.parallelism import accuracy_under_parallelism, aup_interval

SEED_KEYS = ("seed", "dataset.seed")  # override keys whose jobs are replicates of one setting
INTERVAL_METRICS = ("em", "f1", "lenient", "strict", "accuracy", "rougeL")
ACCURACY_KEYS = ("em", "accuracy", "rougeL")  # the accuracy of AUP: the first a record has
GROUP_SIZE_KEYS = ("dataset.group_size", "dataset.max_questions", "dataset.min_questions")


@dataclass(frozen=True)
class GroupScores:
    """One (job, strategy): question counts per group, and each accuracy metric's sum per group (same order)."""

    counts: list[float]
    sums: dict[str, list[float]]


LABELS = {"em": "EM", "f1": "F1", "lenient": "len", "strict": "strict", "accuracy": "acc", "rougeL": "ROUGE-L"}


def uncertainty_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """Flat report fields of one strategy entry of ``results.json`` (absent figures are left out)."""
    fields: dict[str, Any] = {}
    metrics, intervals = entry.get("metrics", {}), entry.get("intervals", {})
    for key in dict.fromkeys([*metrics, *intervals]):
        if key in metrics and key not in ("em", "f1", "lenient", "strict"):
            fields[key] = metrics[key]  # em/f1/lenient/strict are collected already
        if key in intervals:
            fields[f"{key}_ci_low"], fields[f"{key}_ci_high"] = intervals[key]["ci_low"], intervals[key]["ci_high"]
    parallelism = entry.get("parallelism") or {}
    if parallelism:
        fields["nfe"] = parallelism.get("nfe")
        for key in ("tokens_per_forward", "tokens_per_forward_per_branch"):
            fields[key] = (parallelism.get(key) or {}).get("mean")
    paired = entry.get("paired") or {}
    if paired.get("metrics"):
        fields["paired_reference"] = paired["reference"]
        for key, d in paired["metrics"].items():
            fields.update({f"{key}_diff": d["diff"], f"{key}_diff_ci_low": d["ci_low"],
                               f"{key}_diff_ci_high": d["ci_high"], f"{key}_p": d["p_value"]})
    return fields


def seed_keys(swept: list[str]) -> list[str]:
    return [k for k in swept if k in SEED_KEYS]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def aggregate_seeds(records: list[dict[str, Any]], swept: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Records with the seed jobs of each (setting, strategy) merged: numeric figures become their mean across
    seeds with ``<figure>_sd`` (sample sd, 0 for one seed) and ``n_seeds``; per-run intervals and p-values are
    dropped (the spread across seeds replaces them). Returns (records, the swept keys left)."""
    seeds = seed_keys(swept)
    if not seeds:
        return records, swept
    kept = [k for k in swept if k not in seeds]
    buckets: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        buckets[(tuple(record.get(k) for k in kept), record["strategy"])].append(record)
    merged = []
    for (setting, strategy), items in buckets.items():
        out: dict[str, Any] = {"job": ",".join(str(r["job"]) for r in items), **dict(zip(kept, setting)),
                               "strategy": strategy, "n_seeds": len(items)}
        keys = dict.fromkeys(k for r in items for k in r if k not in out and k not in seeds)
        for key in keys:
            if key.endswith(("_ci_low", "_ci_high", "_p")):
                continue
            values = [r.get(key) for r in items]
            if all(_is_number(v) for v in values):
                mean = statistics.fmean(values)
                out[key] = int(mean) if all(isinstance(v, int) for v in values) and mean.is_integer() else mean
                if key not in ("n_questions", "nfe"):
                    out[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
            elif len({str(v) for v in values}) == 1:
                out[key] = values[0]
        merged.append(out)
    return merged, kept


def metric_text(record: dict[str, Any], keys: tuple[str, ...] = ("em", "f1", "lenient", "accuracy", "rougeL")) -> str:
    """``EM 0.300 [0.100, 0.500]`` per metric the record has (95% interval), or ``EM 0.300 ± 0.020`` across
    seeds."""
    parts = []
    for key in keys:
        value = record.get(key)
        if not _is_number(value):
            continue
        text = f"{LABELS.get(key, key)} {value:.3f}"
        if _is_number(record.get(f"{key}_sd")) and record.get("n_seeds", 1) > 1:
            text += f" ± {record[f'{key}_sd']:.3f}"
        elif _is_number(record.get(f"{key}_ci_low")):
            text += f" [{record[f'{key}_ci_low']:.3f}, {record[f'{key}_ci_high']:.3f}]"
        parts.append(text)
    return " · ".join(parts)


def accuracy_key(records: list[dict[str, Any]]) -> str | None:
    return next((k for k in ACCURACY_KEYS if any(_is_number(r.get(k)) for r in records)), None)


def degree_key(records: list[dict[str, Any]], swept: list[str], degree: str = "auto") -> str | None:
    """The degree of parallelism of AUP: a swept numeric group-size key when there is one, else the measured
    tokens per forward (``degree`` names either explicitly)."""
    if degree != "auto":
        if degree not in swept and degree not in ("tokens_per_forward", "tokens_per_forward_per_branch"):
            raise ConfigError(f"degree {degree!r} is neither a swept override ({', '.join(swept) or 'none'}) nor "
                             f"tokens_per_forward / tokens_per_forward_per_branch")
        return degree
    for key in GROUP_SIZE_KEYS:
        if key in swept and all(_is_number(_float(r.get(key))) for r in records):
            return key
    return "tokens_per_forward"


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def aup_rows(records: list[dict[str, Any]], swept: list[str], degree: str = "auto",
             group_scores: dict[tuple[str, str], GroupScores] | None = None) -> list[dict[str, Any]]:
    """One row per strategy (per strategy and backend when the records come from several backends):
    ``{strategy, backend, degree, accuracy, aup, ci_low, ci_high, area, degree_min, degree_max, points}``.
    ``records`` are per job; the interval needs every job's ``group_scores`` (else it is None)."""
    key, acc = degree_key(records, swept, degree), accuracy_key(records)
    if key is None or acc is None:
        return []
    several_backends = len({r.get("backend") for r in records}) > 1
    rows = []
    for strategy, backend in dict.fromkeys((r["strategy"], r.get("backend") if several_backends else None)
                                           for r in records):
        mine = [r for r in records if r["strategy"] == strategy and (backend is None or r.get("backend") == backend)]
        summary = accuracy_under_parallelism([_float(r.get(key)) for r in mine], [r.get(acc) for r in mine])
        scores = [(group_scores or {}).get((r.get("job"), strategy)) for r in mine]
        interval = None
        if summary and all(s is not None and acc in s.sums for s in scores):
            interval = aup_interval([(_float(r.get(key)), s.sums[acc], s.counts) for r, s in zip(mine, scores)])
        rows.append({"strategy": strategy, "backend": backend, "degree": key, "accuracy": acc,
                     **(summary or {"aup": None}), "ci_low": interval[0] if interval else None,
                     "ci_high": interval[1] if interval else None})
    return rows


def aup_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    backends = any(row.get("backend") for row in rows)
    lines = [f"\n### Accuracy under parallelism ({rows[0]['accuracy']} vs {rows[0]['degree']})\n",
             f"| strategy |{' backend |' if backends else ''} degree range | points "
             f"| AUP (mean accuracy over the range) [95% interval] | area |",
             "|---|---|---|---|---|" + ("---|" if backends else "")]
    for row in rows:
        head = f"| {row['strategy']} |" + (f" {row['backend']} |" if backends else "")
        if row["aup"] is None:
            lines.append(f"{head} — | <2 | — | — |")
            continue
        interval = f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]" if row.get("ci_low") is not None else ""
        lines.append(f"{head} {row['degree_min']:.3g} – {row['degree_max']:.3g} | {row['points']} "
                     f"| {row['aup']:.3f}{interval} | {row['area']:.3f} |")
    return "\n".join(lines) + "\n"


def paired_markdown(records: list[dict[str, Any]], swept: list[str]) -> str:
    """Each setting's strategies minus the run's reference: difference [95% interval], permutation p."""
    rows = [r for r in records if r.get("paired_reference")]
    if not rows:
        return ""
    reference = rows[0]["paired_reference"]
    metrics = [k for k in INTERVAL_METRICS if any(_is_number(r.get(f"{k}_diff")) for r in rows)]
    header = [*(swept or ["run"]), "strategy", *(f"Δ{LABELS.get(k, k)}" for k in metrics)]
    lines = [f"\n### Paired vs {reference} (same questions; 95% interval over groups; sign-flip permutation p)\n",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = []
        for k in metrics:
            d = r.get(f"{k}_diff")
            if not _is_number(d):
                cells.append("—")
                continue
            text = f"{d:+.3f}"
            if _is_number(r.get(f"{k}_diff_sd")) and r.get("n_seeds", 1) > 1:
                text += f" ± {r[f'{k}_diff_sd']:.3f}"
            elif _is_number(r.get(f"{k}_diff_ci_low")):
                text += f" [{r[f'{k}_diff_ci_low']:+.3f}, {r[f'{k}_diff_ci_high']:+.3f}] p={r[f'{k}_p']:.3g}"
            cells.append(text)
        setting = [str(r.get(k)) for k in swept] if swept else ["all"]
        lines.append("| " + " | ".join([*setting, r["strategy"], *cells]) + " |")
    return "\n".join(lines) + "\n"


def error_bars(records: list[dict[str, Any]], key: str = "em") -> tuple[list[float], list[float]] | None:
    """(below, above) error bar lengths of ``key``: the sd across seeds, else the 95% interval; None if none."""
    below, above = [], []
    for r in records:
        value = r.get(key)
        if _is_number(r.get(f"{key}_sd")) and r.get("n_seeds", 1) > 1:
            below.append(r[f"{key}_sd"])
            above.append(r[f"{key}_sd"])
        elif _is_number(r.get(f"{key}_ci_low")) and _is_number(value):
            below.append(max(0.0, value - r[f"{key}_ci_low"]))
            above.append(max(0.0, r[f"{key}_ci_high"] - value))
        else:
            below.append(0.0)
            above.append(0.0)
    return (below, above) if any(below) or any(above) else None
