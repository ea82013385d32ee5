"""Strategies: how a group of questions is decoded. Each ``conf/strategy/<name>.yaml`` names its class.

``cfg.strategies`` lists the names to run; each YAML is loaded into ``cfg.strategy.<name>`` (user overrides such
as ``+strategy.batch.batch_size=4`` merged on top) so interpolations like ``${checkpoints.finetuned}`` resolve
against the run's config and the results record exactly what ran.

A strategy that cannot run in this configuration (e.g. ``auto_checkpoints=true`` found no checkpoint for it)
raises ``StrategyUnavailable`` from its constructor or its optional ``check()``; given a ``skipped`` dict,
``build_strategies`` leaves it out and records the notice there instead of failing the run. A checkpoint a strategy
found itself (``Strategy.found_checkpoint``) is recorded in ``checkpoints.<name>``, so the results say what ran.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from parallel_decoding.config import CONFIG_DIR, ConfigError, available_options
from parallel_decoding.strategies.base import GroupOutcome, QuestionPrediction, Strategy, StrategyUnavailable

log = logging.getLogger(__name__)


def _unavailable(err: BaseException | None) -> StrategyUnavailable | None:
    while err is not None:  # instantiate wraps what a constructor raises
        if isinstance(err, StrategyUnavailable):
            return err
        err = err.__cause__
    return None


def _record_checkpoint(cfg: DictConfig, name: str, path: Path) -> None:
    with open_dict(cfg):
        if cfg.get("checkpoints") is None:
            cfg.checkpoints = {}
        cfg.checkpoints[name] = str(path)
    log.info("strategy %s uses the checkpoint found at %s", name, path)


def strategy_config(name: str) -> DictConfig:
    path = CONFIG_DIR / "strategy" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown strategy {name!r}; available: {', '.join(available_options('strategy'))}")
    return OmegaConf.load(path)


def build_strategies(cfg: DictConfig, skipped: dict[str, str] | None = None) -> list[Strategy]:
    """The strategies of ``cfg.strategies``; unavailable ones are left out and noted in ``skipped`` when given
    (without it, ``StrategyUnavailable`` propagates)."""
    names = list(cfg.strategies)
    if len(set(names)) != len(names):
        raise ConfigError(f"strategies lists a name twice: {names}")
    with open_dict(cfg):
        if cfg.get("strategy") is None:
            cfg.strategy = {}
        for name in names:
            cfg.strategy[name] = OmegaConf.merge(strategy_config(name), cfg.strategy.get(name) or {})
    strategies = []
    for name in names:
        try:
            strategy = instantiate(cfg.strategy[name], name=name)
            if callable(getattr(strategy, "check", None)):
                strategy.check()
        except Exception as err:
            unavailable = _unavailable(err)
            if unavailable is None:
                raise
            if skipped is None:
                raise unavailable from None  # the notice itself, not instantiate's wrapping of it
            log.warning("%s", unavailable)
            skipped[name] = str(unavailable)
            continue
        if strategy.found_checkpoint is not None:
            _record_checkpoint(cfg, name, strategy.found_checkpoint)
        strategies.append(strategy)
    return strategies


__all__ = ["GroupOutcome", "QuestionPrediction", "Strategy", "StrategyUnavailable", "build_strategies",
           "strategy_config"]
