"""The cross-batch strategies and ``auto_checkpoints``: found, loaded, compared with ``batch``; missing ones skipped."""

from __future__ import annotations

import copy

import pytest
import torch

from parallel_decoding.backends.base import GenerationSettings

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.methods.base import load_trained
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.strategies import StrategyUnavailable, build_strategies, strategy_config
from parallel_decoding.strategies.batch import BatchStrategy
from parallel_decoding.config import ConfigError, published_checkpoint
from parallel_decoding.methods.crossbatch.checkpoint import eval_strategies, eval_strategy_for
from parallel_decoding.methods.crossbatch.model import VARIANTS
from parallel_decoding.methods.crossbatch.strategy import CrossBatchStrategy
from parallel_decoding.methods.sft.strategy import FinetunedStrategy
from tests.helpers import compose_config
from tests.methods.crossbatch.test_checkpoint import export, trained
from tests.methods.crossbatch.test_method import make_method
from tests.methods.crossbatch.test_model import GROUP, OTHER


def run_model(base: ModelBundle) -> ModelBundle:
    """The evaluate run's own model (a copy: backends hook into the model they serve)."""
    return ModelBundle(model=copy.deepcopy(base.model), tokenizer=base.tokenizer, name="tiny_qwen3")


def evaluate_config(tmp_path, strategies: str, *extra: str):
    return compose_config("evaluate", ["model=tiny_qwen3", "dataset=synthetic", f"strategies={strategies}",
                                       f"paths.checkpoint_dir={tmp_path / 'published'}", *extra],
                          output_dir=tmp_path / "run")


def test_auto_checkpoints_finds_published_checkpoints_and_skips_missing_ones(tiny, tmp_path):
    target = published_checkpoint(tmp_path / "published", "synthetic", "tiny_qwen3", "crossbatch")
    method = make_method(tiny, "crossbatch", publish_dir=str(target))
    export(method, tmp_path / "run_model")
    assert (target / "crossbatch.json").is_file()

    cfg = evaluate_config(tmp_path, "[batch,collab_hidden,lora_lmhead,finetuned]", "auto_checkpoints=true")
    skipped: dict[str, str] = {}
    strategies = build_strategies(cfg, skipped=skipped)
    assert [s.name for s in strategies] == ["batch", "collab_hidden"]
    assert strategies[1].checkpoint == target and cfg.checkpoints.collab_hidden == str(target)
    assert set(skipped) == {"lora_lmhead", "finetuned"}
    assert "lora_lmhead" in skipped["lora_lmhead"] and "tiny_qwen3_lora_lmhead" in skipped["lora_lmhead"]
    assert "tiny_qwen3_baseline" in skipped["finetuned"]
    with pytest.raises(StrategyUnavailable):  # without somewhere to note it, a missing checkpoint is an error
        build_strategies(evaluate_config(tmp_path, "[lora_lmhead]", "auto_checkpoints=true"))


def test_finetuned_answers_with_the_baseline_checkpoint_under_auto_checkpoints(tiny, tmp_path):
    target = published_checkpoint(tmp_path / "published", "synthetic", "tiny_qwen3", "baseline")
    export(make_method(tiny, "baseline", publish_dir=str(target)), tmp_path / "run_model")
    cfg = evaluate_config(tmp_path, "[finetuned]", "auto_checkpoints=true")
    [strategy] = build_strategies(cfg, skipped={})
    assert isinstance(strategy, FinetunedStrategy) and strategy.checkpoint == target


def test_an_explicit_checkpoint_wins_and_a_wrong_one_fails_loudly(tiny, tmp_path):
    export(make_method(tiny, "lora_lmhead"), tmp_path / "mine")
    cfg = evaluate_config(tmp_path, "[lora_lmhead]", "auto_checkpoints=true",
                          f"checkpoints.lora_lmhead={tmp_path / 'mine'}")
    [strategy] = build_strategies(cfg, skipped={})
    assert strategy.checkpoint == tmp_path / "mine"
    with pytest.raises(ConfigError, match="variant lora_lmhead"):  # collab_hidden wants a crossbatch checkpoint
        build_strategies(evaluate_config(tmp_path, "[collab_hidden]", f"checkpoints.collab_hidden={tmp_path / 'mine'}"),
                         skipped={})
    with pytest.raises(ConfigError, match="trained on tiny_qwen3"):
        build_strategies(evaluate_config(tmp_path, "[lora_lmhead]", "model.name=other",
                                         f"checkpoints.lora_lmhead={tmp_path / 'mine'}"), skipped={})
    with pytest.raises(ConfigError, match="auto_checkpoints=true"):
        build_strategies(evaluate_config(tmp_path, "[collab_hidden]"), skipped={})


def test_an_untrained_checkpoint_answers_exactly_like_batch(crossbatch_base, tiny, tmp_path):
    """At initialisation (identity mixer, head = the model's own) collab_hidden is the batch strategy."""
    export(make_method(tiny, "crossbatch"), tmp_path / "ckpt")
    backend = HFBackend(run_model(crossbatch_base), GenerationSettings(max_new_tokens=6))
    strategy = CrossBatchStrategy("collab_hidden", checkpoint=str(tmp_path / "ckpt"), base_model="tiny_qwen3")
    strategy.check()
    ours = strategy.run(GROUP, backend)
    reference = BatchStrategy("batch").run(GROUP, backend)
    assert [p.raw_output for p in ours.predictions] == [p.raw_output for p in reference.predictions]
    assert ours.efficiency.generated_tokens == reference.efficiency.generated_tokens > 0
    assert ours.efficiency.prompt_tokens == reference.efficiency.prompt_tokens
    assert ours.efficiency.forward_passes == 6  # one prefill + 5 steps, the whole group in each


def test_a_trained_checkpoint_mixes_within_each_group_only(crossbatch_base, tiny, tmp_path):
    method = trained(make_method(tiny, "crossbatch"))
    export(method, tmp_path / "ckpt")
    backend = HFBackend(run_model(crossbatch_base), GenerationSettings(max_new_tokens=4))
    base_head = backend.model.get_output_embeddings().weight.detach().clone()
    strategy = CrossBatchStrategy("collab_hidden", checkpoint=str(tmp_path / "ckpt"), base_model="tiny_qwen3")
    first = strategy.run(GROUP, backend)
    assert [p.raw_output for p in first.predictions] != \
           [p.raw_output for p in BatchStrategy("batch").run(GROUP, backend).predictions]
    alone = CrossBatchStrategy("collab_hidden", checkpoint=str(tmp_path / "ckpt"), base_model="tiny_qwen3",
                               max_rows=1)
    with torch.no_grad():  # with one row per batch there is no sibling: the trained head alone decides
        assert len(alone.run(OTHER, backend).predictions) == 2
    assert torch.equal(backend.model.get_output_embeddings().weight, base_head)  # the run's model is untouched


def test_strategies_need_the_in_process_backend():
    assert CrossBatchStrategy.requires_model_internals


def test_lora_crossbatch_loads_its_mixer_and_only_plain_generation_warns_about_it(crossbatch_base, tiny, tmp_path,
                                                                                  caplog):
    export(make_method(tiny, "lora_crossbatch"), tmp_path / "ckpt")
    backend = HFBackend(run_model(crossbatch_base), GenerationSettings(max_new_tokens=3))
    strategy = CrossBatchStrategy("lora_crossbatch", checkpoint=str(tmp_path / "ckpt"), variants=("lora_crossbatch",),
                                  base_model="tiny_qwen3")
    with caplog.at_level("WARNING"):
        assert len(strategy.run(GROUP, backend).predictions) == len(GROUP.questions)
    assert strategy._model.mixer is not None and "plain generation" not in caplog.text
    load_trained(tmp_path / "ckpt")  # the finetuned strategy's way in: the mixer goes unused, and it says so
    assert "holds a mixer, which plain generation does not use: evaluate it with strategy lora_crossbatch" in caplog.text


def test_each_variant_is_answered_by_the_strategy_whose_yaml_names_it():
    """The pairing is written once (conf/strategy/); training's validation reads it back the other way."""
    assert eval_strategies() == {"baseline": "finetuned", "crossbatch": "collab_hidden", "freeze_base": "collab_hidden",
                                 "lora_lmhead": "lora_lmhead", "lora_crossbatch": "lora_crossbatch"}
    assert set(eval_strategies()) == set(VARIANTS)
    for variant, name in eval_strategies().items():  # and auto_checkpoints looks each one up (but freeze_base)
        assert strategy_config(name).published["variant"] == (variant if variant != "freeze_base" else "crossbatch")
    assert eval_strategy_for("lora_lmhead") == "lora_lmhead"
    with pytest.raises(ConfigError, match="method.variant='nope'"):
        eval_strategy_for("nope")
