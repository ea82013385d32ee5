"""``evaluate``'s loop: model x dataset x strategies, written group by group, resumable.

Groups are the outer loop and strategies the inner one, so an interrupted run holds every strategy's answers
for the same first groups (a fair partial comparison) and timing drift hits all strategies alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from parallel_decoding.config import ConfigError
from parallel_decoding.backends.hf import GenerationSettings, HFBackend
from parallel_decoding.data.loading import load_groups
from parallel_decoding.evaluation.recorder import RunRecorder
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.strategies import build_strategies

log = logging.getLogger(__name__)


def run_evaluation(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    # Fail on a bad strategy name or a finished run dir before loading anything heavy.
    strategies = build_strategies(cfg)
    recorder = RunRecorder(run_dir, resume=cfg.resume)
    loaded = load_groups(cfg.dataset)
    if not loaded.groups:
        raise ConfigError(f"dataset {cfg.dataset.name} produced no groups (skipped rows: {loaded.skipped})")
    log.info("%d groups, %d questions; skipped rows: %s", len(loaded.groups),
             sum(len(g.questions) for g in loaded.groups), loaded.skipped or "none")
    bundle: ModelBundle = instantiate(cfg.model.loader)
    backend = HFBackend(bundle, GenerationSettings(**cfg.generation, seed=cfg.seed))
    backend.warmup()
    skipped: dict[str, Any] = {"dataset_rows": dict(loaded.skipped), "strategy_failures": {}}

    todo = [(g, s) for g in loaded.groups for s in strategies if not recorder.is_done(s.name, g.id)]
    log.info("%d (group, strategy) runs to do, %d already done", len(todo),
             len(loaded.groups) * len(strategies) - len(todo))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("evaluating", total=len(todo))
        for group, strategy in todo:
            progress.update(task, description=f"{strategy.name} · group {group.id}")
            try:
                outcome = strategy.run(group, backend)
            except Exception:  # one failing group must not lose the run: log it, count it, go on
                log.exception("strategy %s failed on group %s", strategy.name, group.id)
                failures = skipped["strategy_failures"]
                failures[strategy.name] = failures.get(strategy.name, 0) + 1
            else:
                recorder.write_group(strategy.name, group, outcome)
            progress.advance(task)
    return recorder.results(skipped, OmegaConf.to_container(cfg, resolve=True))
