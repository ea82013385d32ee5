"""The resumable sampler and loader: seeded per-epoch orders, even shards per rank, exact fast-forward."""

from __future__ import annotations

import pytest
import torch

from parallel_decoding.methods.sampling import ResumableDataLoader, ResumableSampler, ShardedEvalSampler


def batches(loader) -> list[list[int]]:
    return [b.tolist() for b in loader]


def loader(n: int, batch_size: int, **kwargs) -> ResumableDataLoader:
    sampler = ResumableSampler(n, batch_size, seed=7, **kwargs)
    return ResumableDataLoader(list(range(n)), batch_size=batch_size, sampler=sampler,
                               drop_last=sampler.drop_last, generator=torch.Generator().manual_seed(0))


def test_epoch_order_is_seeded_and_new_each_epoch():
    a, b = ResumableSampler(50, 4, seed=3), ResumableSampler(50, 4, seed=3)
    assert a.order(0) == b.order(0) and sorted(a.order(0)) == list(range(50))
    assert a.order(0) != a.order(1)
    assert ResumableSampler(50, 4, seed=4).order(0) != a.order(0)
    assert ResumableSampler(50, 4, shuffle=False).order(5) == list(range(50))


@pytest.mark.parametrize("n,world", [(50, 2), (51, 2), (10, 3)])
def test_ranks_get_disjoint_equal_shards_covering_everything(n, world):
    shards = [ResumableSampler(n, 4, seed=1, rank=r, world_size=world).order(2) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # same number of steps on every rank
    seen = [i for s in shards for i in s]
    assert set(seen) == set(range(n))
    assert len(seen) - len(set(seen)) == len(shards[0]) * world - n  # only the padding repeats


def test_resume_mid_epoch_yields_exactly_the_rest_of_that_epoch():
    full = loader(30, 4)
    full.sampler.set_epoch(1)
    expected = batches(full)
    interrupted = loader(30, 4)
    interrupted.sampler.set_epoch(1)
    iterator = iter(interrupted)
    for _ in range(3):
        next(iterator)
    state = interrupted.state_dict()
    assert state == {"epoch": 1, "batches_consumed": 3}
    resumed = loader(30, 4)
    resumed.load_state_dict(state)
    assert batches(resumed) == expected[3:]
    assert batches(resumed) == expected  # the skip applies once; the epoch after that is whole again


def test_state_uses_the_training_loop_count_when_given():
    data = loader(30, 4)
    data.consumed_batches = lambda: 5  # Lightning's processed-batch count, not what the prefetching fetcher pulled
    iterator = iter(data)
    for _ in range(7):
        next(iterator)
    assert data.state_dict()["batches_consumed"] == 5


def test_a_finished_epoch_resumes_at_the_start_of_the_next():
    data = loader(30, 4)
    data.load_state_dict({"epoch": 2, "batches_consumed": 8})  # 30 / 4 -> 8 batches: epoch 2 was complete
    reference = loader(30, 4)
    reference.sampler.set_epoch(3)
    assert data.sampler.epoch == 3 and batches(data) == batches(reference)


def test_drop_last_counts_whole_batches_only():
    sampler = ResumableSampler(30, 4, drop_last=True)
    assert sampler.num_batches == 7 and len(sampler) == 28 and len(sampler.order(0)) == 28
    assert len(batches(loader(30, 4, drop_last=True))) == 7


def test_eval_shards_are_padded_to_equal_length_and_padding_is_marked():
    shards = [list(ShardedEvalSampler(5, rank, 2)) for rank in range(2)]
    assert [len(s) for s in shards] == [3, 3]
    counted = [index for shard in shards for index, is_counted in shard if is_counted]
    assert sorted(counted) == [0, 1, 2, 3, 4]
    assert sum(not c for shard in shards for _, c in shard) == 1
    assert list(ShardedEvalSampler(0, 0, 1)) == []
