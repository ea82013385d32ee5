"""``evaluate``'s loop: model x dataset x strategies, written group by group, resumable.

Groups are the outer loop and strategies the inner one, so an interrupted run holds every strategy's answers
for the same first groups (a fair partial comparison) and timing drift hits all strategies alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.seed import seed_everything
from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from parallel_decoding.config import ConfigError
from parallel_decoding.backends import GenerationSettings, build_backend, refuse_unsupported
from parallel_decoding.data.loading import load_groups
from parallel_decoding.evaluation.recorder import RunRecorder
from parallel_decoding.evaluation.sharding import launch_shards
from parallel_decoding.metrics.judge import build_judge
from parallel_decoding.metrics.metric_sets import check_metric_set
from parallel_decoding.strategies import build_strategies
from parallel_decoding.training.secrets import redact

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
    seed_everything(cfg.seed, verbose=False)
    # Fail on a bad strategy name or a finished run dir before loading anything heavy.
    unavailable: dict[str, str] = {}  # strategy -> why it is skipped (e.g. auto_checkpoints found no checkpoint)
    strategies = supported(build_strategies(cfg, skipped=unavailable), cfg.backend, unavailable)
    if not strategies:
        raise ConfigError("no strategy can run: " + "; ".join(unavailable.values()))
    metric_set, language = cfg.dataset.get("metrics", "qa"), cfg.dataset.get("language", "en")
    check_metric_set(metric_set, language)
    recorder, refusal = None, None
    if shard.is_writer:
        try:
            recorder = RunRecorder(run_dir, resume=cfg.resume, metric_set=metric_set, language=language,
                                   backend=backend_label(cfg.backend))
        except ConfigError as err:
            refusal = str(err)
    refusal, finished = shard.broadcast((refusal, recorder.finished if recorder else None))
    if refusal:  # every rank stops, so none waits forever for the writer
        raise ConfigError(refusal)
    loaded = load_groups(cfg.dataset)
    if not loaded.groups:
        raise ConfigError(f"dataset {cfg.dataset.name} produced no groups (skipped rows: {loaded.skipped})")
    log.info("%d groups, %d questions; skipped rows: %s", len(loaded.groups),
             sum(len(g.questions) for g in loaded.groups), loaded.skipped or "none")
    backend = build_backend(cfg.backend, GenerationSettings(**cfg.generation, seed=cfg.seed), device=shard.device)
    backend.warmup()
    judge = build_judge(cfg.get("judge")) if shard.is_writer else None
    skipped: dict[str, Any] = {"dataset_rows": dict(loaded.skipped), "strategy_failures": {},
                               "strategies": unavailable}

    todo = [(g, s) for g in loaded.groups for s in strategies if (s.name, g.id) not in finished]
    log.info("%d (group, strategy) runs to do, %d already done%s", len(todo),
             len(loaded.groups) * len(strategies) - len(todo),
             f", shared by {shard.world_size} processes" if shard.world_size > 1 else "")

    def attempt(item):
        group, strategy = item
        try:
            return strategy.run(group, backend)
        except Exception:  # one failing group must not lose the run: log it, count it, go on
            log.exception("strategy %s failed on group %s", strategy.name, group.id)
            return None

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False, disable=not shard.is_writer) as progress:
        task = progress.add_task("evaluating", total=len(todo))
        for (group, strategy), outcome in shard.map_in_steps(todo, attempt):
            progress.update(task, description=f"{strategy.name} · group {group.id}", advance=1)
            if recorder is None:
                continue
            if outcome is None:
                failures = skipped["strategy_failures"]
                failures[strategy.name] = failures.get(strategy.name, 0) + 1
            else:
                judgements = judge.judge_group(group, outcome.predictions) if judge is not None else None
                recorder.write_group(strategy.name, group, outcome, judgements)
    if recorder is None:
        return None
    return recorder.results(skipped, redact(OmegaConf.to_container(cfg, resolve=True)))  # no token in results
