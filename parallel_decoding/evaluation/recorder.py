"""Results are data, written as they are produced: ``predictions.jsonl`` (one row per question) and
``groups.jsonl`` (one row per finished group and strategy: its cost, and the marker that makes resume skip it).
``results.json`` is always recomputed from these two files, so it can never disagree with them.

Every group row names the backend that produced it (``hf``, ``vllm``, ``api``), and so does each strategy's
entry of ``results.json``: a sweep over backends (``-m backend=hf,vllm``) reports each row with its engine, and
a run is never resumed on another backend (its rows would silently mix two engines)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.dependencies.quality import precision_recall_f1
from parallel_decoding.evaluation.intervals import add_uncertainty
from parallel_decoding.evaluation.settings import check_resume_settings
from parallel_decoding.metrics.efficiency import EFFICIENCY_FIELDS
from parallel_decoding.evaluation.judge import judge_means
from parallel_decoding.metrics.metric_sets import mean_scores, question_options, score_answer, score_row
from parallel_decoding.strategies.base import GroupOutcome

PREDICTIONS_FILE = "predictions.jsonl"
GROUPS_FILE = "groups.jsonl"
RESULTS_FILE = "results.json"


class Asked(NamedTuple):
    """What one prediction row answers: the question's id and text, its golds and (multiple choice) options."""

    id: str
    text: str
    golds: tuple[str, ...]
    options: dict[str, str] | None = None


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a torn last line (a run killed mid-write) is ignored."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _append(path: Path, rows: Iterable[dict]) -> None:
    with path.open("a") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def summarize(prediction_rows: list[dict], group_rows: list[dict], reference: str | None = None) -> dict[str, Any]:
    """Per-strategy metrics and summed efficiency, recomputed from the rows (metrics re-scored from text), with
    their intervals, paired comparisons against ``reference`` (default: the first strategy) and parallelism
    (``evaluation/intervals.py``)."""
    scores, costs, groups = defaultdict(list), defaultdict(lambda: defaultdict(float)), defaultdict(int)
    metric_sets, judgements = {}, defaultdict(list)  # the dataset's metric set; judge scores (None = failure)
    extras = defaultdict(lambda: defaultdict(float))
    unanswered, backends = defaultdict(int), defaultdict(set)
    for row in prediction_rows:
        scores[row["strategy"]].append(score_row(row))
        metric_sets.setdefault(row["strategy"], row.get("metric_set", "qa"))
        if "judge" in row:
            judgements[row["strategy"]].append(row["judge"])
        unanswered[row["strategy"]] += 0 if row.get("answered", True) else 1
    for row in group_rows:
        groups[row["strategy"]] += 1
        if row.get("backend"):
            backends[row["strategy"]].add(row["backend"])
        missing = [key for key in EFFICIENCY_FIELDS if key not in row["efficiency"]]
        if missing:  # a groups.jsonl from before a cost field existed: never sum it as 0 beside real counts
            raise ConfigError(f"a recorded group of {row['strategy']} lacks the cost fields {missing} (written by an "
                              f"older version); rerun it in a fresh run directory instead of resuming")
        for key in EFFICIENCY_FIELDS:
            costs[row["strategy"]][key] += row["efficiency"][key]
        for key, value in (row.get("extra") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                extras[row["strategy"]][key] += value
    summary = {}
    for strategy in dict.fromkeys([r["strategy"] for r in group_rows]):
        n = len(scores[strategy])
        efficiency = {k: (round(v, 6) if k == "latency_s" else int(v)) for k, v in costs[strategy].items()}
        efficiency["latency_s_per_question"] = round(costs[strategy]["latency_s"] / n, 6) if n else 0.0
        # tokens per forward: how many answer tokens one model call yields (1 for one-row decoding, more when
        # rows or branches share a step); 0 where forward passes are not observable (backend=api)
        forwards = costs[strategy]["forward_passes"]
        efficiency["generated_tokens_per_forward"] = round(costs[strategy]["generated_tokens"] / forwards, 4) \
            if forwards else 0.0
        efficiency["generated_tokens_per_s"] = round(
            costs[strategy]["generated_tokens"] / costs[strategy]["latency_s"], 3) if costs[strategy]["latency_s"] else 0.0
        metrics = mean_scores(metric_sets.get(strategy, "qa"), scores[strategy])
        if judgements[strategy]:
            metrics.update(judge_means(judgements[strategy]))
        summary[strategy] = {
            "metrics": {k: round(v, 6) for k, v in metrics.items()},
            "efficiency": efficiency,
            "n_questions": n,
            "n_groups": groups[strategy],
            "unanswered": unanswered[strategy],
        }
        if backends[strategy]:  # runs written before rows named their backend have none
            summary[strategy]["backend"] = "+".join(sorted(backends[strategy]))
        if judgements[strategy]:
            summary[strategy]["judge_failures"] = sum(1 for j in judgements[strategy] if j is None)
        if extras[strategy]:  # strategy-specific counts (layers, edge tp/fp/fn, ...), summed over groups
            summary[strategy]["extra"] = extra = {k: round(v, 6) for k, v in extras[strategy].items()}
            if "edge_tp" in extra:  # DAG quality against the gold edges, micro-averaged over groups
                prf = precision_recall_f1(extra["edge_tp"], extra["edge_fp"], extra["edge_fn"])
                extra.update({f"edge_{k}": None if v is None else round(v, 6) for k, v in prf.items()})
    return add_uncertainty(summary, prediction_rows, scores, group_rows, reference)


class RunRecorder:
    def __init__(self, run_dir: str | Path, resume: bool = False, metric_set: str = "qa",
                 language: str = "en", settings: dict[str, Any] | None = None, backend: str | None = None) -> None:
        """``settings`` (``evaluation.settings.answer_settings``): stored on the first run, and a resume whose
        settings differ is refused here, before any file is touched."""
        self.metric_set, self.language = metric_set, language  # the dataset's (dataset.metrics, dataset.language)
        self.backend = backend  # written into every group row (None: not recorded)
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.predictions_path = self.run_dir / PREDICTIONS_FILE
        self.groups_path = self.run_dir / GROUPS_FILE
        existing = read_jsonl(self.groups_path)
        if existing and not resume:
            raise ConfigError(
                f"{self.run_dir} already holds results; pass resume=true to continue it, or use a new hydra.run.dir"
            )
        if settings is not None:
            check_resume_settings(self.run_dir, settings, has_results=bool(existing))
        others = sorted({r["backend"] for r in existing if r.get("backend")} - {backend}) if backend else []
        if others:
            raise ConfigError(
                f"{self.run_dir} holds results of backend={'/'.join(others)}; resuming it with backend={backend} "
                f"would mix two engines in one table: resume with backend={others[0]}, or use a new hydra.run.dir"
            )
        self.finished = {(r["strategy"], r["group_id"]) for r in existing}
        # Drop prediction rows of groups that never finished (interrupted mid-group): they are redone.
        kept = [r for r in read_jsonl(self.predictions_path) if (r["strategy"], r["group_id"]) in self.finished]
        self.predictions_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
        self.groups_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in existing))

    def is_done(self, strategy: str, group_id: str) -> bool:
        return (strategy, group_id) in self.finished

    def write_group(self, strategy: str, group: QuestionGroup, outcome: GroupOutcome,
                    judgements: dict[str, Any] | None = None) -> None:
        """Rows keep what rescoring needs: metric set, language, multiple-choice options, judge scores
        (``judge: null`` = the judge failed on that answer; no ``judge`` key = judge off)."""
        questions = {q.id: q for q in group.questions}
        asked = [Asked(q.id, q.text, tuple(q.answers), question_options(self.metric_set, q))
                 for q in (questions[p.question_id] for p in outcome.predictions)]
        self.write_answers(strategy, group.id, asked, outcome, judgements)

    def write_answers(self, strategy: str, group_id: str, asked: list[Asked], outcome: GroupOutcome,
                      judgements: dict[str, Any] | None = None) -> None:
        """The rows of one finished group, ``asked[i]`` being what ``outcome.predictions[i]`` answers: for runners
        whose prompts are not a dataset's ``QuestionGroup`` (the inseq runner; golds may be empty when unscored)."""
        rows = []
        for p, q in zip(outcome.predictions, asked, strict=True):
            scores = score_answer(self.metric_set, p.prediction, list(q.golds), p.format_valid,
                                  language=self.language, options=q.options)
            row = {
                "strategy": strategy, "group_id": group_id, "question_id": q.id, "question": q.text,
                "prediction": p.prediction, "gold": list(q.golds), "raw_output": p.raw_output,
                "format_valid": p.format_valid, "answered": p.answered, "metric_set": self.metric_set,
                **({"language": self.language} if self.language != "en" else {}),
                **({"options": q.options} if q.options else {}), **scores,
            }
            if judgements is not None:
                row["judge"] = judgements.get(q.id)
            rows.append(row)
        _append(self.predictions_path, rows)
        _append(self.groups_path, [{"strategy": strategy, "group_id": group_id, "n_questions": len(rows),
                                    **({"backend": self.backend} if self.backend else {}),
                                    "efficiency": outcome.efficiency.to_dict(), "extra": outcome.extra}])
        self.finished.add((strategy, group_id))

    def results(self, skipped: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        results = {
            "strategies": summarize(read_jsonl(self.predictions_path), read_jsonl(self.groups_path),
                                    reference=config.get("reference_strategy")),
            "skipped": skipped,
            "config": config,
        }
        tmp = self.run_dir / (RESULTS_FILE + ".tmp")
        tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False))
        tmp.replace(self.run_dir / RESULTS_FILE)
        return results
