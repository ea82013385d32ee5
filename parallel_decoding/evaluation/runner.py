"""``evaluate``'s loop: model x dataset x strategies, written group by group, resumable.

Groups are the outer loop and strategies the inner one, so an interrupted run holds every strategy's answers
for the same first groups (a fair partial comparison) and timing drift hits all strategies alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.seed import seed_everything
from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from parallel_decoding.config import ConfigError
from parallel_decoding.backends import build_backend, refuse_unsupported
from parallel_decoding.backends.base import checked_generation
from parallel_decoding.data.loading import load_groups
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.evaluation.recorder import RunRecorder
from parallel_decoding.evaluation.settings import answer_settings
from parallel_decoding.evaluation.sharding import launch_shards
from parallel_decoding.evaluation.judge import build_judge
from parallel_decoding.metrics.metric_sets import check_metric_set
from parallel_decoding.utils.manifest import write_manifest
from parallel_decoding.strategies import build_strategies
from parallel_decoding.utils.secrets import redact

log = logging.getLogger(__name__)


def backend_label(backend_cfg: DictConfig) -> str:
    """The name results give the backend: its module (``hf``, ``vllm``, ``api``), as ``backend=`` spells it."""
    return str(backend_cfg._target_).rsplit(".", 2)[-2]


def supported(strategies: list, backend_cfg: DictConfig, unavailable: dict[str, str]) -> list:
    """The strategies this backend can serve. The others (e.g. a hidden-state strategy on ``backend=vllm``) are
    skipped with a notice and listed in ``results.json``'s ``skipped.strategies``, so a sweep over backends
    (``-m backend=hf,vllm``) gives every strategy its hf row and the deployed engine the rows it can run."""
    kept = []
    for strategy in strategies:
        try:
            refuse_unsupported([strategy], backend_cfg)
        except ConfigError as refusal:
            unavailable[strategy.name] = str(refusal)
            log.warning("skipping strategy %s: %s", strategy.name, refusal)
            continue
        kept.append(strategy)
    return kept


def run_evaluation(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any] | None:
    """Evaluate every (group, strategy); returns the results on the writing rank, None on the other ranks."""
    shard = launch_shards(cfg.hardware)
    generation = checked_generation(cfg.generation, seed=cfg.seed)  # a value that cannot work: refused now
    seed_everything(cfg.seed, verbose=False)
    # Fail on a bad strategy name or a finished run dir before loading anything heavy.
    unavailable: dict[str, str] = {}  # strategy -> why it is skipped (e.g. auto_checkpoints found no checkpoint)
    strategies = supported(build_strategies(cfg, skipped=unavailable), cfg.backend, unavailable)
    if not strategies:
        raise ConfigError("no strategy can run: " + "; ".join(unavailable.values()))
    reference = cfg.get("reference_strategy")
    if reference is not None and reference not in {s.name for s in strategies}:
        raise ConfigError(f"reference_strategy={reference} is not one of the strategies run: "
                          f"{[s.name for s in strategies]}")
    metric_set, language = cfg.dataset.get("metrics", "qa"), cfg.dataset.get("language", "en")
    check_metric_set(metric_set, language)
    recorder, refusal = None, None
    if shard.is_writer:
        try:
            recorder = RunRecorder(run_dir, resume=cfg.resume, metric_set=metric_set, language=language,
                                   settings=answer_settings(cfg), backend=backend_label(cfg.backend))
        except ConfigError as err:
            refusal = str(err)
        else:  # what reruns this run and what it runs on (python -m parallel_decoding.reproduce <run dir>)
            write_manifest(run_dir, "parallel_decoding.evaluate", resume=bool(cfg.resume))
    refusal, finished = shard.broadcast((refusal, recorder.finished if recorder else None))
    if refusal:  # every rank stops, so none waits forever for the writer
        raise ConfigError(refusal)
    loaded = load_groups(cfg.dataset)
    if not loaded.groups:
        raise ConfigError(f"dataset {cfg.dataset.name} produced no groups (skipped rows: {loaded.skipped})")
    log.info("%d groups, %d questions; skipped rows: %s", len(loaded.groups),
             sum(len(g.questions) for g in loaded.groups), loaded.skipped or "none")
    if loaded.renamed:
        log.warning("dataset %s: %s", cfg.dataset.name, loaded.renamed)
    backend = build_backend(cfg.backend, generation, device=shard.device)
    groups, too_long = drop_too_long(loaded.groups, backend, generation.max_new_tokens)
    backend.warmup()
    judge = build_judge(cfg.get("judge")) if shard.is_writer else None
    skipped: dict[str, Any] = {"dataset_rows": dict(loaded.skipped), "strategy_failures": {},
                               "strategies": unavailable}
    if loaded.renamed:
        skipped["dataset_ids_renamed"] = dict(loaded.renamed)
    if too_long:
        skipped["too_long"] = too_long

    todo = [(g, s) for g in groups for s in strategies if (s.name, g.id) not in finished]
    log.info("%d (group, strategy) runs to do, %d already done%s", len(todo),
             len(groups) * len(strategies) - len(todo),
             f", shared by {shard.world_size} processes" if shard.world_size > 1 else "")
    first_errors: dict[str, str] = {}

    def attempt(item):
        group, strategy = item
        try:
            return strategy.run(group, backend)
        except Exception as error:  # one failing group must not lose the run: log it, count it, go on
            log.exception("strategy %s failed on group %s", strategy.name, group.id)
            return Failed(f"{type(error).__name__}: {error}")

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False, disable=not shard.is_writer) as progress:
        task = progress.add_task("evaluating", total=len(todo))
        for (group, strategy), outcome in shard.map_in_steps(todo, attempt):
            progress.update(task, description=f"{strategy.name} · group {group.id}", advance=1)
            if recorder is None:
                continue
            if isinstance(outcome, Failed):
                failures = skipped["strategy_failures"]
                failures[strategy.name] = failures.get(strategy.name, 0) + 1
                first_errors.setdefault(strategy.name, outcome.error)
            else:
                judgements = judge.judge_group(group, outcome.predictions) if judge is not None else None
                recorder.write_group(strategy.name, group, outcome, judgements)
    if recorder is None:
        return None
    finished_names = {name for name, _ in recorder.finished}
    without_answers = {s.name: why_no_answers(s.name, skipped, first_errors) for s in strategies
                       if s.name not in finished_names}
    if without_answers:
        skipped["strategies_without_answers"] = without_answers
    return recorder.results(skipped, redact(OmegaConf.to_container(cfg, resolve=True)))  # no token in results


@dataclass(frozen=True)
class Failed:
    """A (group, strategy) that raised; picklable, so sharded runs gather it like an outcome."""

    error: str


def why_no_answers(name: str, skipped: dict[str, Any], first_errors: dict[str, str]) -> str:
    failed = skipped["strategy_failures"].get(name, 0)
    if failed:
        error = " ".join(first_errors.get(name, "").split())  # one line, whatever the exception printed
        error = error if len(error) <= 300 else error[:297] + "..."
        return (f"failed on all {failed} groups it ran (first error: {error}); the log has the tracebacks, "
                f"resume=true retries them")
    if skipped.get("too_long"):
        return "every group was too long for the model's context"
    return "no group finished"


def failed_strategy_lines(results: dict[str, Any]) -> list[str]:
    """One line per strategy that ended with no answer at all; the entry point exits non-zero on any."""
    return [f"strategy {name}: {why}" for name, why in
            (results.get("skipped", {}).get("strategies_without_answers") or {}).items()]


def drop_too_long(groups: list[QuestionGroup], backend: Any,
                  max_new_tokens: int) -> tuple[list[QuestionGroup], dict[str, int]]:
    """Groups every strategy can read, and the count of those it cannot, decided before anything is allocated.

    Any strategy puts at least one question's context and text in one sequence and generates
    ``max_new_tokens`` after it; when that alone exceeds the model's context the group cannot be answered (a
    5 MB context once asked for a 1.2 TB attention matrix). Longer prompts a strategy builds (several questions
    at once) are refused by the backend itself (``PromptTooLong``) and counted as that strategy's failures.
    Backends that do not know their context length (``api``) skip this check.
    """
    limit = getattr(backend, "max_context_tokens", None)
    if not limit:
        return groups, {}
    tokenizer = backend.tokenizer
    sizes: dict[str, int] = {}
    counts: dict[str, int] = {}

    def size(text: str) -> int:  # bytes: a token covers at least one, so this bounds the token count
        if text not in sizes:
            sizes[text] = len(text.encode("utf-8"))
        return sizes[text]

    def count(text: str) -> int:
        if text not in counts:
            counts[text] = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        return counts[text]

    kept, dropped_questions = [], 0
    for group in groups:
        needed = 0
        for question in group.questions:
            context = group.context_of(question) or ""
            if size(context) + size(question.text) + 2 + max_new_tokens <= limit:
                continue  # surely fits: no need to tokenize
            needed = max(needed, count(context) + count(question.text))
        if needed + max_new_tokens > limit:
            dropped_questions += len(group.questions)
            log.warning("group %s skipped: a question with its context takes %d tokens, plus %d new tokens "
                        "exceeds the model's context of %d tokens", group.id, needed, max_new_tokens, limit)
            continue
        kept.append(group)
    if len(kept) == len(groups):
        return groups, {}
    return kept, {"groups": len(groups) - len(kept), "questions": dropped_questions, "context_limit_tokens": limit}
