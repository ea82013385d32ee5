"""Question groups become training batches through a method's collator; splits are by group; the LR schedule's
length comes from the data module's arithmetic, never from a loader."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from parallel_decoding.config import ConfigError
from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.methods.datamodule import (EvalBatch, QuestionGroupDataModule, collate_eval,
                                                  planned_optimizer_steps, split_groups)
from parallel_decoding.methods.sft.collator import SFTCollator


@pytest.fixture(scope="module")
def groups():
    return load_synthetic(context_count=20, min_questions=2, max_questions=4, seed=5).groups


def test_split_is_by_group_seeded_and_leaks_no_context(groups):
    splits = split_groups(groups, val=0.2, test=3, seed=1)
    ids = splits.ids()
    assert (len(ids["val"]), len(ids["test"]), len(ids["train"])) == (4, 3, 13)
    assert not set(ids["train"]) & set(ids["val"]) and not set(ids["train"]) & set(ids["test"])
    assert not set(ids["val"]) & set(ids["test"])
    train_contexts = {c for g in splits.train for c in g.contexts}
    assert not train_contexts & {c for g in splits.val + splits.test for c in g.contexts}
    assert split_groups(groups, 0.2, 3, seed=1).ids() == ids
    assert split_groups(groups, 0.2, 3, seed=2).ids() != ids


def test_split_sizes_fraction_count_and_cap(groups):
    assert len(split_groups(groups, val=0.01, test=0, seed=0).val) == 1  # a fraction never rounds to nothing
    capped = split_groups(groups, val=0.5, test=0.3, seed=0, max_eval_groups=2)
    assert (len(capped.val), len(capped.test), len(capped.train)) == (2, 2, 16)


def test_too_few_groups_for_the_split_is_a_config_error(groups):
    with pytest.raises(ConfigError, match="val_groups"):
        split_groups(groups[:2], val=1, test=1, seed=0)


def test_training_examples_come_only_from_training_groups(groups, tiny_bundle):
    data = QuestionGroupDataModule(groups, SFTCollator(tiny_bundle.tokenizer), batch_size=3, val_groups=2,
                                   test_groups=2, split_seed=0)
    data.setup("fit")
    train_ids = {g.id for g in data.splits.train}
    assert {ex.group_id for ex in data.train_examples} == train_ids
    assert len(data.train_examples) == sum(len(g.questions) for g in data.splits.train)
    batches = list(data.train_dataloader())
    assert len(batches) == data.train_batches_per_epoch() == -(-len(data.train_examples) // 3)
    assert batches[0]["input_ids"].shape[0] == 3 and set(batches[0]) == {"input_ids", "attention_mask", "labels"}
    evals = list(data.val_dataloader())
    assert all(isinstance(b, EvalBatch) for b in evals)
    assert sorted(g.id for b in evals for g in b.groups) == sorted(g.id for g in data.splits.val)


def test_eval_batches_accept_plain_groups_when_lightning_swaps_the_sampler(groups):
    # overfit_batches replaces the sharded sampler by a SequentialSampler, whose keys are plain indices
    batch = collate_eval([groups[0], (groups[1], False)])
    assert batch.groups == [groups[0], groups[1]] and batch.counted == [True, False]


def test_planned_steps_from_max_steps_or_from_epochs_without_a_loader():
    data = SimpleNamespace(train_batches_per_epoch=lambda world_size: 10 // world_size)
    trainer = SimpleNamespace(max_steps=50, max_epochs=-1, datamodule=data, world_size=1, overfit_batches=0,
                              limit_train_batches=1.0, accumulate_grad_batches=1)
    assert planned_optimizer_steps(trainer) == 50
    trainer.max_epochs, trainer.max_steps, trainer.accumulate_grad_batches = 3, -1, 2
    assert planned_optimizer_steps(trainer) == 15
    trainer.world_size, trainer.max_steps = 2, 4
    assert planned_optimizer_steps(trainer) == 4
    trainer.limit_train_batches, trainer.max_steps = 2, -1
    assert planned_optimizer_steps(trainer) == 3
