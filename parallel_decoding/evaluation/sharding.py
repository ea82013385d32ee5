"""Sharded evaluation: several processes (GPUs, or CPU processes over gloo for tests) split the
(group, strategy) work, and rank 0 alone writes the results files, so resume and ``results.json`` work exactly
as in a single-process run.

Work is dealt round-robin in steps of ``world_size`` items; after each step the outcomes are gathered to every
rank (``all_gather_object``) and rank 0 writes them in the original order. No item is run twice or dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch.distributed as dist
from omegaconf import DictConfig

Item = TypeVar("Item")


@dataclass
class Shard:
    rank: int = 0
    world_size: int = 1
    device: str | None = None  # this rank's device when launched by Fabric (cuda:<local rank>)

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value on every rank."""
        if self.world_size == 1:
            return value
        holder = [value if self.rank == 0 else None]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def map_in_steps(self, items: Sequence[Item], work: Callable[[Item], Any]) -> Iterator[tuple[Item, Any]]:
        """Yield ``(item, result)`` for every item, in order, on every rank; each item is worked by one rank."""
        for start in range(0, len(items), self.world_size):
            step = items[start:start + self.world_size]
            mine = step[self.rank] if self.rank < len(step) else None
            result = work(mine) if mine is not None else None
            if self.world_size == 1:
                yield mine, result
                continue
            gathered: list[Any] = [None] * self.world_size
            dist.all_gather_object(gathered, result)
            yield from zip(step, gathered[:len(step)])


def launch_shards(hardware: DictConfig) -> Shard:
    """One process for ``devices: 1``; otherwise Fabric launches the other ranks (re-running this command in the
    same Hydra run dir) and joins them in one process group."""
    devices = int(hardware.get("devices", 1) or 1)
    num_nodes = int(hardware.get("num_nodes", 1) or 1)
    if devices * num_nodes <= 1:
        return Shard()
    # lazy: Lightning's Fabric only for a sharded (multi-process) evaluation
    from lightning.fabric import Fabric

    fabric = Fabric(accelerator=hardware.get("accelerator", "auto"), devices=devices, num_nodes=num_nodes,
                    strategy="ddp")
    fabric.launch()
    device = str(fabric.device) if fabric.device.type != "cpu" else None
    return Shard(rank=fabric.global_rank, world_size=fabric.world_size, device=device)
