"""Every shipped config composes and resolves, and every strategy YAML instantiates (torchtune's
test_configs idea): a YAML that no code consumes correctly fails here, not in a user's run."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from parallel_decoding.config import available_options, checkpoint_keys
from parallel_decoding.strategies import Strategy, strategy_config
from tests.helpers import compose_config

GROUPS = ["model", "dataset", "strategy", "hardware", "debug"]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS if g != "strategy" for o in available_options(g)
                                          if not (g == "model" and o == "hub_base")])
def test_every_option_composes_and_resolves(group, option, tmp_path):
    cfg = compose_config("evaluate", [f"{group}={option}"], output_dir=tmp_path)
    OmegaConf.resolve(cfg)
    if group != "debug":  # debug configs are `# @package _global_` overrides, not a node of their own
        assert cfg[group].name == option


@pytest.mark.parametrize("name", available_options("strategy"))
def test_every_strategy_instantiates(name):
    strategy = instantiate(strategy_config(name), name=name)
    assert isinstance(strategy, Strategy) and strategy.name == name


def test_hub_models_keep_their_ids(tmp_path):
    cfg = compose_config("evaluate", ["model=qwen3_4b"], output_dir=tmp_path)
    assert cfg.model.loader.hub_id == "Qwen/Qwen3-4B" and cfg.model.loader.path is None
    cfg = compose_config("evaluate", ["model=qwen2_5_7b_instruct", "model.path=/models/q7"], output_dir=tmp_path)
    assert cfg.model.loader.path == "/models/q7"


def test_hardware_sets_model_dtype_and_device(tmp_path):
    cfg = compose_config("evaluate", ["hardware=gpu", "model=tiny_qwen3"], output_dir=tmp_path)
    assert (cfg.model.loader.device, cfg.model.loader.dtype) == ("cuda", "bfloat16")


def test_checkpoints_has_a_key_per_strategy_yaml_that_reads_one_and_refuses_a_misspelt_one(tmp_path):
    """evaluate.yaml lists no strategy: its keys come from conf/strategy/, so a new strategy adds its own."""
    cfg = compose_config("evaluate", ["checkpoints.finetuned=/x"], output_dir=tmp_path)
    assert set(cfg.checkpoints) == set(checkpoint_keys()) >= {"finetuned", "collab_hidden", "llada", "branch2d"}
    assert cfg.checkpoints.finetuned == "/x" and cfg.checkpoints.llada is None
    assert all(f"checkpoints.{name}" in OmegaConf.to_yaml(strategy_config(name)) for name in checkpoint_keys())
    with pytest.raises(ConfigCompositionException, match="checkpoints.finetunde"):
        compose_config("evaluate", ["checkpoints.finetunde=/x"])
