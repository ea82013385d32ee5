"""Samplers and the data loader that make a training run resumable exactly, mid-epoch included.

Epoch ``e``'s order is a permutation drawn from a generator seeded with ``(seed, e)``: it depends on nothing
else, so a resumed run regenerates the same order and skips the batches it had already consumed. Lightning
saves ``ResumableDataLoader.state_dict()`` in every checkpoint (it calls it on any train loader that has
``state_dict``/``load_state_dict``) and hands it back through ``load_state_dict`` before the first ``iter()``
of a resumed fit.

Sharding across ranks is done here, not by Lightning's ``DistributedSampler`` (``use_distributed_sampler`` is
off): each rank takes every ``world_size``-th index of the padded permutation, so all ranks run the same number
of steps and the resume position (a batch count) means the same thing on every rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class ResumableSampler(Sampler[int]):
    """This rank's share of ``num_examples`` in a seeded per-epoch order, able to fast-forward ``n`` batches."""

    def __init__(self, num_examples: int, batch_size: int, *, seed: int = 0, shuffle: bool = True, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False) -> None:
        if num_examples < 1:
            raise ValueError("no training examples to sample from")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.epoch = 0
        self._skip_batches = 0

    @property
    def per_rank(self) -> int:
        return math.ceil(self.num_examples / self.world_size)

    @property
    def num_batches(self) -> int:
        """Batches one rank sees per epoch."""
        if self.drop_last:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def order(self, epoch: int) -> list[int]:
        """Every index this rank visits in ``epoch``, in order (before any fast-forward)."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            indices = torch.randperm(self.num_examples, generator=generator).tolist()
        else:
            indices = list(range(self.num_examples))
        padded = self.per_rank * self.world_size
        indices += indices[: padded - len(indices)]  # like DistributedSampler: repeat a few to even out ranks
        mine = indices[self.rank::self.world_size]
        if self.drop_last:
            mine = mine[: self.num_batches * self.batch_size]
        return mine

    def fast_forward(self, epoch: int, batches_consumed: int) -> None:
        """Resume at ``epoch`` after ``batches_consumed`` of its batches; a finished epoch resumes at the next."""
        if batches_consumed >= self.num_batches:
            epoch, batches_consumed = epoch + 1, 0
        self.epoch = epoch
        self._skip_batches = batches_consumed

    def __iter__(self) -> Iterator[int]:
        indices = self.order(self.epoch)
        start, self._skip_batches = self._skip_batches * self.batch_size, 0
        return iter(indices[start:])

    def __len__(self) -> int:
        return self.num_batches * self.batch_size if self.drop_last else self.per_rank


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over a ``ResumableSampler`` whose position Lightning checkpoints.

    ``consumed_batches`` tells how many batches of the current epoch the training loop has finished. Counting
    what this loader yielded is not enough under Lightning, whose fetcher prefetches a batch ahead of the
    step; the data module therefore passes Lightning's own per-epoch count of processed batches.
    """

    def __init__(self, *args: Any, consumed_batches: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.consumed_batches = consumed_batches
        self._yielded = 0

    def __iter__(self) -> Iterator[Any]:
        self._yielded = 0
        for batch in super().__iter__():
            self._yielded += 1
            yield batch

    def _resumable_sampler(self) -> ResumableSampler | None:
        # overfit_batches makes Lightning swap in a SequentialSampler: nothing to resume then
        return self.sampler if isinstance(self.sampler, ResumableSampler) else None

    def state_dict(self) -> dict[str, int]:
        sampler = self._resumable_sampler()
        if sampler is None:
            return {}
        consumed = self.consumed_batches() if self.consumed_batches is not None else self._yielded
        return {"epoch": int(sampler.epoch), "batches_consumed": int(consumed)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self._resumable_sampler()
        if sampler is not None and state:
            sampler.fast_forward(state["epoch"], state["batches_consumed"])


class ShardedEvalSampler(Sampler[tuple[int, bool]]):
    """This rank's share of evaluation items as ``(index, counted)`` keys.

    Shards are padded (by repeating items, marked ``counted=False``) so every rank runs the same number of
    evaluation steps: generation on sharded (FSDP) weights is a collective, and a rank that stopped early would
    hang the others. Padding items are generated but never scored.
    """

    def __init__(self, num_items: int, rank: int = 0, world_size: int = 1) -> None:
        self.num_items = num_items
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        if self.num_items == 0:
            return iter(())
        per_rank = math.ceil(self.num_items / self.world_size)
        keys = [(i % self.num_items, i < self.num_items) for i in range(per_rank * self.world_size)]
        return iter(keys[self.rank::self.world_size])

    def __len__(self) -> int:
        return math.ceil(self.num_items / self.world_size) if self.num_items else 0
