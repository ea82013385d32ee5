"""``method=branch2d`` and the ``branch2d`` strategy: the patch is applied before LoRA and LoRA parameters get
gradients, the export round-trips (same channels, same logits), the strategy decodes exactly what
``branch_generate`` decodes, the untrained-baseline path leaves other strategies unchanged, and the collapse
diagnostic is logged/recorded. A model trained with ``method.layout.trunk=context_first_question`` (configs composed
as ``train`` / ``evaluate`` compose them) is decoded by the strategy with that trunk."""

from __future__ import annotations

import copy

import pytest
import torch
from hydra.utils import instantiate

from parallel_decoding.backends.base import GenerationSettings

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.methods.base import load_trained, read_method_record
from parallel_decoding.methods.branch2d import (Branch2DMethod, batch_collapse, branch_generate,
                                                mean_pairwise_cosine, patched_channels)
from parallel_decoding.methods.branch2d.data import first_question_layout, group_prompts
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.strategies import build_strategies
from parallel_decoding.strategies.batch import BatchStrategy
from parallel_decoding.methods.branch2d.strategy import Branch2DStrategy
from parallel_decoding.prompting.prompts import single_question_messages
from parallel_decoding.training.optim import build_optimizer
from tests.helpers import compose_config

LORA = {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


@pytest.fixture(scope="module")
def groups():
    return load_synthetic(context_count=3, min_questions=2, max_questions=3, seed=7).groups


@pytest.fixture
def bundle(tiny_qwen3):
    model, tokenizer, _ = tiny_qwen3
    return ModelBundle(copy.deepcopy(model), tokenizer, "tiny_qwen3")


def method(bundle, **kwargs):
    return Branch2DMethod(bundle, optimizer=lambda m: build_optimizer(m, lr=1e-3), **kwargs)


@pytest.mark.parametrize("lora", [None, LORA])
def test_training_step_gives_gradients_to_what_trains(bundle, groups, lora):
    m = method(bundle, lora=lora, rope={"x_channels": [1], "y_channels": [4]})
    assert patched_channels(m.model).to_dict() == {"x_channels": [1], "y_channels": [4]}
    collator = m.collator()
    loss, _ = m.training_loss(collator([collator.examples(g)[0] for g in groups]))
    loss.backward()
    trained = {name: p for name, p in m.model.named_parameters() if p.requires_grad}
    assert trained and all(p.grad is not None for p in trained.values())
    if lora:  # at init lora_B = 0, so only lora_B's gradient is non-zero (lora_A's follows after one step)
        assert all("lora_" in name for name in trained)
        trained = {name: p for name, p in trained.items() if "lora_B" in name}
    assert trained and all(p.grad.abs().sum() > 0 for p in trained.values())
    assert m.method_config["rope"] == {"x_channels": [1], "y_channels": [4]}


@pytest.mark.parametrize("lora", [None, LORA])
def test_export_round_trips_channels_layout_and_outputs(bundle, groups, lora, tmp_path):
    m = method(bundle, lora=lora, layout={"mask": "column", "align": "right", "x_stride": 9})
    if lora:  # non-zero adapters, so merging matters
        with torch.no_grad():
            for name, p in m.model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.5)
    m.model.eval()
    prefix, prompts = group_prompts(bundle.tokenizer, groups[0])
    kwargs = dict(mask="column", align="right", x_stride=9, max_new_tokens=6)
    before = branch_generate(m.model, prefix, prompts, **kwargs).sequences
    m.export(tmp_path)
    record = read_method_record(tmp_path)
    assert record["config"]["layout"] == {"mask": "column", "align": "right", "x_stride": 9, "trunk": "context"}
    loaded = load_trained(tmp_path)
    assert patched_channels(loaded.model) == m.channels
    assert branch_generate(loaded.model, prefix, prompts, **kwargs).sequences == before


def test_strategy_decodes_like_branch_generate_and_records_collapse(bundle, groups, tmp_path):
    m = method(bundle, layout={"mask": "isolated", "align": "right", "x_stride": 5})
    m.model.eval()
    m.export(tmp_path)
    base = HFBackend(ModelBundle(copy.deepcopy(bundle.model), bundle.tokenizer, "tiny_qwen3"),
                     GenerationSettings(max_new_tokens=5))
    strategy = Branch2DStrategy("branch2d", checkpoint=str(tmp_path))  # its own default layout is overridden
    outcome = strategy.run(groups[0], base)
    assert strategy.layout_settings.align == "right" and strategy.layout_settings.x_stride == 5
    prefix, prompts = group_prompts(bundle.tokenizer, groups[0])
    expected = branch_generate(m.model, prefix, prompts, align="right", x_stride=5, max_new_tokens=5,
                               stop_token_ids=base.stop_token_ids).sequences
    assert [p.raw_output for p in outcome.predictions] == [bundle.tokenizer.decode(e, skip_special_tokens=True)
                                                           for e in expected]
    assert -1.0 <= outcome.extra["collapse_sum"] <= 1.0 and outcome.extra["collapse_groups"] == 1
    assert outcome.efficiency.forward_passes == 2 + max(len(e) for e in expected) - 1  # trunk, prompts, steps


def test_first_question_trunk_round_trips_from_train_config_to_strategy(bundle, groups, tmp_path):
    cfg = compose_config("train", ["method=branch2d", "model=tiny_qwen3", "method.layout.trunk=context_first_question",
                                   "method.optimizer.lr=1e-2", "generation.max_new_tokens=5"])
    m = instantiate(cfg.method, _partial_=True, _convert_="all")(bundle=bundle)
    assert m.layout_settings.trunk == "context_first_question"
    optimizer = m.optimizer_factory(m.model)  # the configured optimizer, one training step
    collator = m.collator()
    before = copy.deepcopy(m.model.state_dict())
    m.training_loss(collator([collator.examples(g)[0] for g in groups]))[0].backward()
    optimizer.step()
    assert any(not torch.equal(before[k], v) for k, v in m.model.state_dict().items())
    m.model.eval()
    m.export(tmp_path)
    assert read_method_record(tmp_path)["config"]["layout"]["trunk"] == "context_first_question"

    run = compose_config("evaluate", ["model=tiny_qwen3", "strategies=[branch2d]", f"checkpoints.branch2d={tmp_path}",
                                      "generation.max_new_tokens=5"])
    [strategy] = build_strategies(run)
    assert strategy.layout_settings.trunk == "context"  # its own config's default, until the checkpoint loads
    base = HFBackend(ModelBundle(copy.deepcopy(bundle.model), bundle.tokenizer, "tiny_qwen3"),
                     GenerationSettings(max_new_tokens=5))
    group = max(groups, key=lambda g: len(g.questions))
    outcome = strategy.run(group, base)
    assert strategy.layout_settings.trunk == "context_first_question"
    # the reference: Q1 by the trained model's plain generate, then Q2.. as branches after Q1 + that answer
    trained = m.answering_backend()  # validation's backend and strategy, this run's layout
    [a1] = trained.generate([trained.chat_ids(single_question_messages(group, group.questions[0]))])
    closed = (a1[:-1] if a1[-1] in base.stop_token_ids else a1) + [bundle.tokenizer.eos_token_id]
    trunk, prompts, _ = first_question_layout(bundle.tokenizer, group, closed)
    rest = branch_generate(m.model, trunk, prompts, max_new_tokens=5, stop_token_ids=base.stop_token_ids).sequences
    expected = [trained.decode(ids) for ids in [a1, *rest]]
    assert [p.raw_output for p in outcome.predictions] == expected
    assert outcome.efficiency.generate_calls == 2
    assert [p.raw_output for p in m._strategy.run(group, trained).predictions] == expected  # validation too


def test_untrained_baseline_patches_in_place_without_changing_other_strategies(bundle, groups):
    backend = HFBackend(bundle, GenerationSettings(max_new_tokens=5))
    batch = BatchStrategy("batch")
    before = [p.raw_output for p in batch.run(groups[1], backend).predictions]
    Branch2DStrategy("branch2d").run(groups[1], backend)
    assert patched_channels(backend.model) is not None
    assert [p.raw_output for p in batch.run(groups[1], backend).predictions] == before


def test_collapse_diagnostic_values(bundle, groups):
    assert mean_pairwise_cosine(torch.tensor([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])) == pytest.approx(1.0)
    assert mean_pairwise_cosine(torch.tensor([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(0.0)
    assert mean_pairwise_cosine(torch.tensor([[1.0, 0.0]])) is None
    m = method(bundle)
    collator = m.collator()
    value = batch_collapse(m.model, collator([collator.examples(g)[0] for g in groups]))
    assert value is not None and -1.0 <= value <= 1.0
