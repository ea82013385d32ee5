"""In-sequence parallel decoding on one task, compared with normal decoding of the same prompt (the body of
``python -m parallel_decoding.inseq``).

Writes ``results.jsonl`` (one row per example, written as it finishes; ``resume=true`` skips finished ones) and
``summary.json`` (correctness where gold exists, end-to-end time and tokens/s for both modes, stage-2 tokens/s,
branch counts, fallbacks) in the Hydra run dir, and beside them the files ``evaluate`` writes
(``evaluation/recorder.py``: ``predictions.jsonl``, ``groups.jsonl``, ``results.json``, ``run_settings.json``,
``manifest.json``), so ``python -m parallel_decoding.report <run dir>`` reads the run like an evaluate run: every
example is a group of one question, answered by the strategies ``normal`` (the reference, when
``compare_normal``) and ``parallel``, scored with the task's metric set (``inseq_task.metrics``; the answer after
the task's label is the prediction, the label present is the format).
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.decoding import SamplingSettings
from parallel_decoding.evaluation.recorder import Asked, RunRecorder
from parallel_decoding.evaluation.settings import answer_settings
from parallel_decoding.methods.inseq.decoder import InSequenceDecoder, InSequenceSettings, NormalResult, ParallelResult
from parallel_decoding.methods.inseq.prompts import with_format_instruction
from parallel_decoding.methods.inseq.tasks import (
    ANSWER_LABELS,
    TaskExample,
    answered_in_format,
    final_answer,
    score_example,
)
from parallel_decoding.metrics.efficiency import EfficiencyStats
from parallel_decoding.metrics.metric_sets import check_metric_set
from parallel_decoding.strategies.base import GroupOutcome, QuestionPrediction
from parallel_decoding.utils.manifest import write_manifest
from parallel_decoding.utils.secrets import redact

log = logging.getLogger(__name__)
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
ENTRY_POINT = "parallel_decoding.inseq"  # the command line this run's manifest reruns
# What this runner's resume may change (more examples; the baseline on or off): answers already written stay valid.
RESUMABLE_SETTINGS = ("inseq_task.loader.count", "compare_normal")


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-mode figures over the finished rows (recomputed from ``results.jsonl``, so it cannot disagree)."""
    summary: dict[str, Any] = {"examples": len(rows)}
    for mode in ("normal", "parallel"):
        done = [r[mode] for r in rows if r.get(mode)]
        if not done:
            continue
        scored = [r["score"]["correct"] for r in done if r["score"]["correct"] is not None]
        summary[mode] = {
            "accuracy": _mean([float(c) for c in scored]),
            "scored": len(scored),
            "time_s": _mean([r["time_s"] for r in done]),
            "tokens_per_s": _mean([r["tokens_per_s"] for r in done]),
            "response_tokens": _mean([r.get("response_tokens", r.get("generated_tokens", 0)) for r in done]),
        }
        if mode == "parallel":
            branched = [r for r in done if r["mode"] == "parallel"]
            summary[mode].update(
                branch_count=_mean([r["branch_count"] for r in done]),
                fallbacks=sum(r["mode"] == "fallback" for r in done),
                stage2_tokens_per_s=_mean([r["stage2_tokens_per_s"] for r in branched]),
                stage_times_s={k: _mean([r["stage_times_s"][k] for r in branched if k in r["stage_times_s"]])
                               for k in ("stage1", "stem", "stage2", "stage3")} if branched else {},
            )
    if "normal" in summary and "parallel" in summary and summary["parallel"]["time_s"]:
        summary["speedup_end_to_end"] = round(summary["normal"]["time_s"] / summary["parallel"]["time_s"], 4)
    return summary


def outcome_of(example_id: str, result: NormalResult | ParallelResult, prompt_tokens: int, stats: EfficiencyStats,
               label: str, correct: bool | None) -> GroupOutcome:
    """One decode as ``evaluate`` records a strategy's group: the labelled answer as the prediction, the decoder's
    own time as the latency, forward passes as the backend's hook counted them, the runner's figures (its own
    correctness check among them) as extras."""
    prediction = QuestionPrediction(example_id, final_answer(result.text, label), result.text,
                                    format_valid=answered_in_format(result.text, label),
                                    answered=bool(result.text.strip()))
    stats.latency_s = result.time_s
    # the prompt is prefilled once; later prefills (the stem, the branch headers) are the model's own text
    stats.prompt_tokens = stats.dedup_prompt_tokens = stats.computed_prompt_tokens = prompt_tokens
    stats.generated_tokens = result.generated_tokens
    extra: dict[str, Any] = {"mode": getattr(result, "mode", "normal"), **({} if correct is None else
                                                                          {"correct": int(correct)})}
    if isinstance(result, ParallelResult):
        stats.generate_calls = 3 if result.mode == "parallel" else 1 + bool(result.trace.conclusion_ids)
        extra.update(fallbacks=int(result.mode == "fallback"), branch_count=result.branch_count,
                     response_tokens=result.response_tokens, stage2_tokens=result.stage2_tokens,
                     stage2_time_s=result.stage_times_s.get("stage2", 0.0))
    else:
        stats.generate_calls = 1
    return GroupOutcome([prediction], stats, extra)


def run_inseq(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    examples: list[TaskExample] = list(instantiate(cfg.inseq_task.loader))
    if not examples:
        raise ConfigError(f"task {cfg.inseq_task.name} produced no examples")
    results_path = run_dir / RESULTS_FILE
    rows = [json.loads(line) for line in results_path.read_text().splitlines() if line.strip()] \
        if results_path.is_file() else []
    if rows and not cfg.resume:
        raise ConfigError(f"{run_dir} already holds results; pass resume=true or use a new hydra.run.dir")
    finished = {r["id"] for r in rows}
    metric_set = cfg.inseq_task.get("metrics", "qa")
    languages = {e.language for e in examples}
    language = languages.pop() if len(languages) == 1 else "en"  # only generation scores depend on it
    check_metric_set(metric_set, language)
    recorded = {k: v for k, v in answer_settings(cfg).items() if k not in RESUMABLE_SETTINGS}
    recorder = RunRecorder(run_dir, resume=cfg.resume, metric_set=metric_set, language=language,
                           settings=recorded, backend="hf")
    write_manifest(run_dir, ENTRY_POINT, resume=bool(cfg.resume))

    bundle = instantiate(cfg.model.loader)
    backend = HFBackend(bundle)
    sampling = SamplingSettings(cfg.sampling.do_sample, cfg.sampling.temperature, cfg.sampling.top_p, cfg.seed)
    settings = InSequenceSettings(**OmegaConf.to_container(cfg.inseq, resolve=True))
    decoder = InSequenceDecoder(bundle.model, bundle.tokenizer, bundle.stop_token_ids, sampling, settings)
    warm = backend.chat_ids([{"role": "user", "content": "Hi"}])
    decoder.engine.generate(warm[:-1], [warm[-1:]], max_new_tokens=2)  # lazy initialisation, not measured
    label = ANSWER_LABELS[cfg.inseq_task.name]

    for example in examples:
        if example.id in finished:
            continue
        ids = backend.chat_ids([{"role": "user", "content": with_format_instruction(example.prompt,
                                                                                    example.language)}])
        row: dict[str, Any] = {"id": example.id, "task": example.task, "gold": list(example.gold),
                               "prompt_tokens": len(ids)}
        asked = [Asked(example.id, example.prompt, tuple(example.gold))]
        if cfg.compare_normal:
            with backend.measure() as stats:
                normal = decoder.normal(ids)
            row["normal"] = {"text": normal.text, "time_s": normal.time_s, "generated_tokens": normal.generated_tokens,
                             "response_tokens": normal.generated_tokens, "tokens_per_s": normal.tokens_per_s,
                             "score": score_example(example, normal.text, label)}
            if not recorder.is_done("normal", example.id):
                recorder.write_answers("normal", example.id, asked, outcome_of(
                    example.id, normal, len(ids), stats, label, row["normal"]["score"]["correct"]))
        with backend.measure() as stats:
            parallel = decoder.parallel(ids)
        row["parallel"] = {**parallel.to_dict(), "score": score_example(example, parallel.text, label)}
        if not recorder.is_done("parallel", example.id):
            recorder.write_answers("parallel", example.id, asked, outcome_of(
                example.id, parallel, len(ids), stats, label, row["parallel"]["score"]["correct"]))
        with results_path.open("a") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        rows.append(row)
        log.info("%s: %s, %d branches, %.1fs (normal %.1fs)", example.id, parallel.mode, parallel.branch_count,
                 parallel.time_s, row.get("normal", {}).get("time_s", float("nan")))

    config = OmegaConf.to_container(cfg, resolve=True)
    skipped = {} if cfg.compare_normal else {"strategies": {"normal": "compare_normal=false"}}
    recorder.results(skipped, redact(config))  # results.json: what the report reads
    summary = {"task": cfg.inseq_task.name, "model": cfg.model.name, **summarize(rows),
               "config": config, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary
