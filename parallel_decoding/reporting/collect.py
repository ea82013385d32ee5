"""Read a sweep directory: each job's ``results.json`` plus the overrides Hydra saved for it.

A job that crashed (no ``results.json``) is listed as missing, never silently dropped. Every record names the
backend that produced it (from ``results.json``); when jobs ran on different backends (``-m backend=hf,vllm``)
``backend`` is a swept key, placed last so each setting's engines sit in adjacent rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

METRIC_KEYS = ("em", "f1", "lenient", "strict")
COST_KEYS = ("latency_s", "latency_s_per_question", "prompt_tokens", "dedup_prompt_tokens", "computed_prompt_tokens",
             "generated_tokens", "forward_passes", "generated_tokens_per_forward", "generate_calls")


@dataclass
class SweepRecords:
    """One record per (job, strategy); ``swept`` are the override keys whose values differ between jobs."""

    records: list[dict[str, Any]]
    swept: list[str]
    missing_jobs: list[str] = field(default_factory=list)


def _parse_overrides(job_dir: Path) -> dict[str, str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    overrides = {}
    for item in yaml.safe_load(path.read_text()) or []:
        key, _, value = str(item).partition("=")
        overrides[key.lstrip("+~")] = value
    return overrides


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """Job dirs are those holding a Hydra record; a single run dir is a sweep of one."""
    if (sweep_dir / ".hydra").is_dir():
        return [sweep_dir]
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def collect_sweep(sweep_dir: str | Path) -> SweepRecords:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep dir {sweep_dir} does not exist")
    jobs, missing = [], []
    for job_dir in _job_dirs(sweep_dir):
        results_path = job_dir / "results.json"
        if not results_path.is_file():
            missing.append(job_dir.name)
            continue
        jobs.append((job_dir, _parse_overrides(job_dir), json.loads(results_path.read_text())))
    keys = sorted({k for _, overrides, _ in jobs for k in overrides})
    swept = [k for k in keys if k != "backend" and len({overrides.get(k) for _, overrides, _ in jobs}) > 1]
    records = []
    for job_dir, overrides, results in jobs:
        for strategy, entry in results.get("strategies", {}).items():
            efficiency = entry.get("efficiency", {})
            record = {"job": job_dir.name, **{k: overrides.get(k) for k in swept},
                      "backend": entry.get("backend") or overrides.get("backend"), "strategy": strategy,
                      "n_questions": entry.get("n_questions", 0)}
            record.update({k: entry.get("metrics", {}).get(k) for k in METRIC_KEYS})
            record.update({k: efficiency.get(k) for k in COST_KEYS})
            records.append(record)
    if len({r["backend"] for r in records}) > 1:
        swept.append("backend")
    return SweepRecords(records=records, swept=swept, missing_jobs=missing)
