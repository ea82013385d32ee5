"""Question groups in, training batches out: the one data module every method trains with.

The split is by group, never by question, so a context seen in training never reaches validation or test.
What a group turns into is the method's business: its ``MethodCollator`` says which training examples a group
yields (one per question for SFT, one per group for methods that decode all questions together) and how a list
of them becomes a batch. Validation and test batches are groups (``EvalBatch``): methods answer them by
generation, the way ``evaluate`` will.

It sits in the methods layer, not in ``training/``, because methods build on it: every collator is a
``MethodCollator``, validation steps take ``EvalBatch``es, a method may extend the data module itself
(``methods/llada/data.LLaDADataModule``), and ``TrainableMethod.configure_optimizers`` sizes its LR schedule from it
(``planned_optimizer_steps``).
"""

from __future__ import annotations

import logging
import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import lightning.pytorch as L
import torch
from torch.utils.data import DataLoader, Dataset

from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.methods.sampling import ResumableDataLoader, ResumableSampler, ShardedEvalSampler

log = logging.getLogger(__name__)


class MethodCollator(ABC):
    """How a method turns question groups into training batches."""

    def __init__(self) -> None:
        self.skipped: dict[str, int] = {}  # examples left out, by reason (e.g. longer than max_length)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    @abstractmethod
    def examples(self, group: QuestionGroup) -> list[Any]:
        """The training examples one group yields (built once, when the data module is set up)."""

    @abstractmethod
    def __call__(self, examples: list[Any]) -> dict[str, torch.Tensor]:
        """A batch of tensors from a list of examples."""


class EvalBatch:
    """Groups to answer. ``counted[i]`` is False for padding that evens out ranks: answered, never scored.

    A plain class on purpose: Lightning's device transfer and precision casts walk dataclasses and sequences,
    and refuse the frozen ``QuestionGroup`` inside; an opaque object is passed through untouched.
    """

    __slots__ = ("groups", "counted")

    def __init__(self, groups: list[QuestionGroup], counted: list[bool]) -> None:
        self.groups = groups
        self.counted = counted


@dataclass
class GroupSplits:
    train: list[QuestionGroup]
    val: list[QuestionGroup]
    test: list[QuestionGroup]

    def ids(self) -> dict[str, list[str]]:
        return {name: [g.id for g in getattr(self, name)] for name in ("train", "val", "test")}


def split_size(spec: float | int | None, total: int) -> int:
    """A count given as a fraction (0 < spec < 1, at least one group) or as a number of groups."""
    if spec is None or spec <= 0:
        return 0
    if spec < 1:
        return max(1, round(spec * total))
    return int(spec)


def split_groups(groups: Sequence[QuestionGroup], val: float | int, test: float | int, seed: int,
                 max_eval_groups: int | None = None) -> GroupSplits:
    """Seeded split by group. Validation and test get ``val``/``test`` groups (capped); training the rest."""
    ids = [g.id for g in groups]
    if len(set(ids)) != len(ids):
        raise ConfigError("group ids are not unique, so a split by group could leak a context across splits")
    n_val, n_test = split_size(val, len(groups)), split_size(test, len(groups))
    if max_eval_groups is not None:
        n_val, n_test = min(n_val, max_eval_groups), min(n_test, max_eval_groups)
    if n_val + n_test >= len(groups):
        raise ConfigError(f"{len(groups)} groups cannot give {n_val} validation and {n_test} test groups and "
                          f"still leave some to train on; lower data.val_groups / data.test_groups or load more "
                          f"groups (dataset.context_count)")
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    picked = [groups[i] for i in order]
    return GroupSplits(val=picked[:n_val], test=picked[n_val:n_val + n_test], train=picked[n_val + n_test:])


class _Items(Dataset):
    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):  # (index, counted) from ShardedEvalSampler
            index, counted = key
            return self.items[index], counted
        return self.items[key]


def collate_eval(items: list[tuple[QuestionGroup, bool] | QuestionGroup]) -> EvalBatch:
    # plain groups when Lightning swapped the sampler (overfit_batches uses a SequentialSampler): all counted
    pairs = [item if isinstance(item, tuple) else (item, True) for item in items]
    return EvalBatch(groups=[g for g, _ in pairs], counted=[c for _, c in pairs])


class QuestionGroupDataModule(L.LightningDataModule):
    def __init__(
        self,
        groups: Sequence[QuestionGroup],
        collator: MethodCollator,
        batch_size: int = 8,
        eval_batch_size: int = 8,
        val_groups: float | int = 0.05,
        test_groups: float | int = 0.05,
        max_eval_groups: int | None = 32,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise ConfigError("data.batch_size and data.eval_batch_size must be >= 1")
        self.collator = collator
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.shuffle_seed = shuffle_seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.num_workers = num_workers
        self.splits = split_groups(groups, val_groups, test_groups, split_seed, max_eval_groups)
        self.train_examples: list[Any] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_examples is not None:
            return
        self.train_examples = [ex for group in self.splits.train for ex in self.collator.examples(group)]
        if not self.train_examples:
            raise ConfigError(f"the {len(self.splits.train)} training groups yielded no training examples "
                              f"(skipped: {self.collator.skipped})")
        log.info("data: %d train groups -> %d examples, %d val groups, %d test groups; skipped examples: %s",
                 len(self.splits.train), len(self.train_examples), len(self.splits.val), len(self.splits.test),
                 self.collator.skipped or "none")

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _sampler(self, rank: int, world_size: int) -> ResumableSampler:
        self.setup()
        return ResumableSampler(len(self.train_examples), self.batch_size, seed=self.shuffle_seed,
                                shuffle=self.shuffle, rank=rank, world_size=world_size, drop_last=self.drop_last)

    def train_batches_per_epoch(self, world_size: int = 1) -> int:
        """Batches per epoch on each rank, without building a loader."""
        return self._sampler(0, world_size).num_batches

    def train_dataloader(self) -> ResumableDataLoader:
        sampler = self._sampler(*self._rank())
        trainer = self.trainer
        # Lightning's count of batches finished in this epoch: the fetcher runs a batch ahead of the step, so the
        # loader's own count would resume one batch too late.
        consumed = (lambda: trainer.fit_loop.epoch_loop.batch_progress.current.processed) if trainer else None
        return ResumableDataLoader(
            _Items(self.train_examples), batch_size=self.batch_size, sampler=sampler, drop_last=self.drop_last,
            collate_fn=self.collator, num_workers=self.num_workers, consumed_batches=consumed,
            # the loader's own generator, so creating an iterator never draws from the global RNG (exact resume)
            generator=torch.Generator().manual_seed(self.shuffle_seed),
        )

    def _eval_loader(self, groups: list[QuestionGroup]) -> DataLoader:
        rank, world_size = self._rank()
        return DataLoader(_Items(groups), batch_size=self.eval_batch_size,
                          sampler=ShardedEvalSampler(len(groups), rank, world_size), collate_fn=collate_eval)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.splits.val)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.splits.test)


def planned_optimizer_steps(trainer) -> int:
    """Optimizer steps the fit plans to take: the length of the LR schedule.

    Lightning's ``estimated_stepping_batches`` builds the train loader to count its batches, and does so inside
    ``configure_optimizers``, before a resumed run has restored the loader's position (the early loader is then
    kept and the run re-reads its epoch from the start). So the count comes from the data module's sampler
    arithmetic instead; with ``max_epochs=-1`` (a ``max_steps`` budget) it is just ``max_steps``.
    """
    max_steps = trainer.max_steps if trainer.max_steps is not None else -1
    if trainer.max_epochs is None or trainer.max_epochs < 0:
        if max_steps > 0:
            return max_steps
        raise ConfigError(f"an LR schedule needs a length: trainer.max_steps={trainer.max_steps} and "
                          f"trainer.max_epochs={trainer.max_epochs}; set trainer.max_steps to a positive number of "
                          f"steps, or trainer.max_epochs=N")
    batches = trainer.datamodule.train_batches_per_epoch(trainer.world_size)
    limit = trainer.overfit_batches if trainer.overfit_batches else trainer.limit_train_batches
    if isinstance(limit, int):
        batches = min(batches, limit)
    elif limit is not None:
        batches = int(batches * limit)
    per_epoch = math.ceil(max(batches, 1) / trainer.accumulate_grad_batches)
    total = per_epoch * max(trainer.max_epochs, 1)
    return min(total, max_steps) if max_steps > 0 else total
