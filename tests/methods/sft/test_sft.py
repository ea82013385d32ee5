"""The SFT method: the answer-only loss, LoRA, checkpoints, export and loading back for evaluate."""

from __future__ import annotations

import functools

import pytest
import torch

from parallel_decoding.backends.base import GenerationSettings

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.methods import load_trained, read_method_record
from parallel_decoding.methods.sft import SFTMethod, answer_loss
from parallel_decoding.models import build_tiny_qwen3
from parallel_decoding.strategies.batch import BatchStrategy
from parallel_decoding.methods.sft.strategy import FinetunedStrategy
from parallel_decoding.training.optim import build_optimizer

LORA = {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


@pytest.fixture(scope="module")
def groups():
    return load_synthetic(context_count=3, min_questions=2, max_questions=4, seed=3).groups


def method(lora=None) -> SFTMethod:
    return SFTMethod(build_tiny_qwen3(), optimizer=functools.partial(build_optimizer, lr=1e-2), lora=lora)


def batch_of(sft: SFTMethod, groups) -> dict[str, torch.Tensor]:
    collator = sft.collator()
    return collator([ex for g in groups for ex in collator.examples(g)])


def train_steps(sft: SFTMethod, batch, steps: int = 3) -> None:
    optimizer = sft.optimizer_factory(sft.model)
    for _ in range(steps):
        loss, _ = answer_loss(sft.model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def test_answer_loss_is_the_causal_lm_loss_on_answer_tokens(groups):
    sft = method()
    batch = batch_of(sft, groups)
    assert batch["attention_mask"].min() == 0  # the batch really is padded
    loss, n_targets = answer_loss(sft.model, batch)
    reference = sft.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          labels=batch["labels"]).loss
    assert n_targets == int((batch["labels"] != -100).sum())
    torch.testing.assert_close(loss, reference)
    # Padding content cannot matter: it sits after every scored position, behind the causal mask.
    garbled = {**batch, "input_ids": batch["input_ids"].masked_fill(batch["attention_mask"] == 0, 42)}
    torch.testing.assert_close(answer_loss(sft.model, garbled)[0], loss)


def test_lora_trains_only_adapters_and_checkpoints_only_them(groups):
    sft = method(LORA)
    trainable = {n for n, p in sft.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable) and not sft.strict_loading
    frozen_before = {n: p.detach().clone() for n, p in sft.model.named_parameters() if not p.requires_grad}
    train_steps(sft, batch_of(sft, groups))
    assert all(torch.equal(p, frozen_before[n]) for n, p in sft.model.named_parameters() if not p.requires_grad)
    checkpoint = {"state_dict": sft.state_dict()}
    sft.on_save_checkpoint(checkpoint)
    assert {k.removeprefix("model.") for k in checkpoint["state_dict"]} == trainable
    assert "rng" in checkpoint


@pytest.mark.slow  # a full-weight export and reload (~22 s); the LoRA export test covers the path by default
def test_full_export_loads_back_with_the_same_outputs(groups, tmp_path):
    sft = method()
    batch = batch_of(sft, groups)
    train_steps(sft, batch)
    sft.model.eval()
    expected = sft.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    sft.export(tmp_path / "model", {"global_step": 3})
    record = read_method_record(tmp_path / "model")
    assert record["method"] == "sft" and record["global_step"] == 3 and record["config"]["lora"] is None
    loaded = load_trained(tmp_path / "model")
    got = loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(got, expected)


def test_lora_export_writes_adapter_and_merged_weights(groups, tmp_path):
    sft = method(LORA)
    batch = batch_of(sft, groups)
    train_steps(sft, batch)
    sft.model.eval()
    expected = sft.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.detach()
    sft.export(tmp_path / "model")
    assert (tmp_path / "model" / "adapter" / "adapter_config.json").is_file()
    loaded = load_trained(tmp_path / "model")  # plain transformers: the merge needs no peft at load time
    assert not any("lora_" in n for n, _ in loaded.model.named_parameters())
    got = loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_finetuned_strategy_answers_with_the_saved_weights(groups, tmp_path, tiny_bundle):
    sft = method()
    train_steps(sft, batch_of(sft, groups), steps=5)
    sft.export(tmp_path / "model")
    base = HFBackend(tiny_bundle, GenerationSettings(max_new_tokens=6))
    strategy = FinetunedStrategy("finetuned", checkpoint=str(tmp_path / "model"))
    outcome = strategy.run(groups[0], base)
    reference = BatchStrategy("batch").run(groups[0], HFBackend(load_trained(tmp_path / "model"),
                                                                GenerationSettings(max_new_tokens=6)))
    assert [p.raw_output for p in outcome.predictions] == [p.raw_output for p in reference.predictions]
    assert outcome.efficiency.generated_tokens > 0


def test_finetuned_strategy_without_or_with_a_bad_checkpoint_fails_clearly(groups, tmp_path, tiny_bundle):
    with pytest.raises(ConfigError, match="not a saved model directory"):
        FinetunedStrategy("finetuned", checkpoint=str(tmp_path))
    with pytest.raises(ConfigError, match="checkpoints.finetuned"):
        FinetunedStrategy("finetuned").run(groups[0], HFBackend(tiny_bundle))
