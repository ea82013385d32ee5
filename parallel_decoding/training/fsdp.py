"""FSDP for any decoder-only HF model, configured by layer class *names* (YAML cannot hold classes)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from lightning.pytorch.strategies import FSDPStrategy
from torch import nn
from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy


def _is_layer(names: frozenset[str], module: nn.Module) -> bool:
    return type(module).__name__ in names


def fsdp_strategy(layer_classes: Sequence[str], sharding_strategy: str = "FULL_SHARD",
                  activation_checkpointing: bool = False, state_dict_type: str = "full") -> FSDPStrategy:
    """Wrap every module whose class is named in ``layer_classes`` (one shard unit per decoder layer)."""
    names = frozenset(layer_classes)
    policy = functools.partial(lambda_auto_wrap_policy, lambda_fn=functools.partial(_is_layer, names))
    kwargs = {}
    if activation_checkpointing:
        kwargs["activation_checkpointing_policy"] = policy
    return FSDPStrategy(auto_wrap_policy=policy, sharding_strategy=sharding_strategy,
                        state_dict_type=state_dict_type, **kwargs)
