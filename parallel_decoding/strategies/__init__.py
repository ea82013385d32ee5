"""Strategies: how a group of questions is decoded. Each ``conf/strategy/<name>.yaml`` names its class.

``cfg.strategies`` lists the names to run; each YAML is loaded into ``cfg.strategy.<name>`` (user overrides such
as ``+strategy.batch.batch_size=4`` merged on top) so interpolations like ``${checkpoints.finetuned}`` resolve
against the run's config and the results record exactly what ran.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from parallel_decoding.config import CONFIG_DIR, ConfigError, available_options
from parallel_decoding.strategies.base import GroupOutcome, QuestionPrediction, Strategy


def strategy_config(name: str) -> DictConfig:
    path = CONFIG_DIR / "strategy" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown strategy {name!r}; available: {', '.join(available_options('strategy'))}")
    return OmegaConf.load(path)


def build_strategies(cfg: DictConfig) -> list[Strategy]:
    names = list(cfg.strategies)
    if len(set(names)) != len(names):
        raise ConfigError(f"strategies lists a name twice: {names}")
    with open_dict(cfg):
        if cfg.get("strategy") is None:
            cfg.strategy = {}
        for name in names:
            cfg.strategy[name] = OmegaConf.merge(strategy_config(name), cfg.strategy.get(name) or {})
    return [instantiate(cfg.strategy[name], name=name) for name in names]


__all__ = ["GroupOutcome", "QuestionPrediction", "Strategy", "build_strategies", "strategy_config"]
