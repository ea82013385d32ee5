"""Read a sweep directory: each job's ``results.json`` plus the overrides Hydra saved for it.

A job that crashed (no ``results.json``) is listed as missing, and one whose ``results.json`` cannot be read
(truncated, not JSON, not the evaluate shape) as broken with the reason; neither is silently dropped, and
neither stops the other jobs from being reported. Every record names the backend that produced it (from
``results.json``); when jobs ran on different backends (``-m backend=hf,vllm``) ``backend`` is a swept key, placed
last so each setting's engines sit in adjacent rows. Each job's ``predictions.jsonl`` gives the per-group accuracy
sums the AUP interval resamples (``group_scores``; a job without it gets no interval, never a wrong one)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from parallel_decoding.evaluation.recorder import PREDICTIONS_FILE, read_jsonl
from parallel_decoding.reporting.uncertainty import ACCURACY_KEYS, GroupScores, uncertainty_fields

METRIC_KEYS = ("em", "f1", "lenient", "strict")
COST_KEYS = ("latency_s", "latency_s_per_question", "prompt_tokens", "dedup_prompt_tokens", "computed_prompt_tokens",
             "generated_tokens", "forward_passes", "generated_tokens_per_forward", "generate_calls")


@dataclass
class SweepRecords:
    """One record per (job, strategy); ``swept`` are the override keys whose values differ between jobs."""

    records: list[dict[str, Any]]
    swept: list[str]
    missing_jobs: list[str] = field(default_factory=list)
    broken_jobs: dict[str, str] = field(default_factory=dict)  # job -> why its results.json was not used
    group_scores: dict[tuple[str, str], GroupScores] = field(default_factory=dict)  # (job, strategy) -> per group


def read_group_scores(job_dir: Path) -> dict[str, GroupScores]:
    """Per strategy of a job: each accuracy metric's per-group sums and the groups' question counts."""
    totals: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    for row in read_jsonl(job_dir / PREDICTIONS_FILE):
        if "strategy" not in row or "group_id" not in row:
            continue
        group = totals[row["strategy"]][str(row["group_id"])]
        group["n"] += 1
        for key in ACCURACY_KEYS:
            if isinstance(row.get(key), (int, float)):
                group[key] += float(row[key])
    return {strategy: GroupScores(counts=[g["n"] for g in groups.values()],
                                  sums={k: [g[k] for g in groups.values()] for k in ACCURACY_KEYS
                                        if any(k in g for g in groups.values())})
            for strategy, groups in totals.items()}


def _parse_overrides(job_dir: Path) -> dict[str, str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    try:
        items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        items = []  # a damaged Hydra record: the job's results still count, without its overrides
    overrides = {}
    for item in items if isinstance(items, list) else []:
        key, _, value = str(item).partition("=")
        overrides[key.lstrip("+~")] = value
    return overrides


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """Job dirs are those holding a Hydra record; a single run dir is a sweep of one."""
    if (sweep_dir / ".hydra").is_dir():
        return [sweep_dir]
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def read_results(path: Path) -> dict[str, Any]:
    """A job's ``results.json`` as ``{"strategies": {name: entry}}``; ``ValueError`` (one line) when it is not."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 (byte offset {err.start})") from None
    except json.JSONDecodeError as err:
        truncated = not err.doc[err.pos:].strip() or err.msg.startswith("Unterminated")
        raise ValueError(f"{'truncated' if truncated else 'not valid'} JSON ({err.msg}: line {err.lineno}, "
                         f"column {err.colno})") from None
    except OSError as err:
        raise ValueError(f"unreadable ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    strategies = data.get("strategies", {})
    if not isinstance(strategies, dict) or not all(isinstance(e, dict) for e in strategies.values()):
        raise ValueError("'strategies' is not an object of per-strategy objects")
    for name, entry in strategies.items():
        for part in ("metrics", "efficiency"):
            if not isinstance(entry.get(part, {}), dict):
                raise ValueError(f"strategy {name!r}: {part!r} is not an object")
    return data


def _number(value: Any) -> Any:
    """Metric and cost cells: numbers (and null) pass; anything else is shown as missing."""
    return value if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)) else None


def collect_sweep(sweep_dir: str | Path) -> SweepRecords:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep dir {sweep_dir} does not exist" if not sweep_dir.exists()
                                else f"{sweep_dir} is not a directory (pass a sweep dir or a run dir)")
    jobs, missing, broken = [], [], {}
    for job_dir in _job_dirs(sweep_dir):
        results_path = job_dir / "results.json"
        if not results_path.is_file():
            missing.append(job_dir.name)
            continue
        try:
            results = read_results(results_path)
        except ValueError as err:
            broken[job_dir.name] = f"{results_path}: {err}"
            continue
        jobs.append((job_dir, _parse_overrides(job_dir), results))
    keys = sorted({k for _, overrides, _ in jobs for k in overrides})
    swept = [k for k in keys if k != "backend" and len({overrides.get(k) for _, overrides, _ in jobs}) > 1]
    records, group_scores = [], {}
    for job_dir, overrides, results in jobs:
        scores = read_group_scores(job_dir)
        for strategy, entry in results.get("strategies", {}).items():
            if strategy in scores:
                group_scores[(job_dir.name, strategy)] = scores[strategy]
            efficiency = entry.get("efficiency", {})
            record = {"job": job_dir.name, **{k: overrides.get(k) for k in swept},
                      "backend": entry.get("backend") or overrides.get("backend"), "strategy": strategy,
                      "n_questions": _number(entry.get("n_questions", 0)) or 0}
            record.update({k: _number(entry.get("metrics", {}).get(k)) for k in METRIC_KEYS})
            record.update({k: _number(efficiency.get(k)) for k in COST_KEYS})
            record.update(uncertainty_fields(entry))  # intervals, paired comparison, parallelism
            records.append(record)
    if len({r["backend"] for r in records}) > 1:
        swept.append("backend")
    return SweepRecords(records=records, swept=swept, missing_jobs=missing, broken_jobs=broken,
                        group_scores=group_scores)
