"""Optimizers and learning-rate schedules, built from ``_partial_`` configs inside ``configure_optimizers``.

    optimizer: {_target_: parallel_decoding.training.optim.build_optimizer, _partial_: true, name: adamw, lr: 2e-5}
    scheduler: {_target_: parallel_decoding.training.optim.warmup_schedule, _partial_: true, kind: cosine, warmup: 0.05}

The 8-bit optimizers come from bitsandbytes when it is installed; without it the run goes on with AdamW and
one warning that says so (a config written on a GPU box still runs on a laptop).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

log = logging.getLogger(__name__)

BITSANDBYTES_OPTIMIZERS = {"adamw8bit": "AdamW8bit", "paged_adamw8bit": "PagedAdamW8bit", "lion8bit": "Lion8bit",
                           "lion": "Lion"}
SCHEDULES = ("linear", "cosine", "constant")
_warned: set[str] = set()


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters, with weight decay only on matrices (not on biases and norm scales)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, name: str = "adamw", lr: float = 2e-5, weight_decay: float = 0.0,
                    betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8) -> Optimizer:
    """``adamw`` (torch), or ``adamw8bit`` / ``paged_adamw8bit`` / ``lion8bit`` / ``lion`` from bitsandbytes."""
    if lr <= 0:
        raise ValueError(f"learning rate must be positive, got {lr}")
    groups = parameter_groups(model, weight_decay)
    betas = tuple(float(b) for b in betas)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    if name not in BITSANDBYTES_OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; use adamw, {', '.join(BITSANDBYTES_OPTIMIZERS)}")
    try:
        import bitsandbytes as bnb  # lazy: optional, CUDA only: the 8-bit optimizers
    except ImportError:
        if name not in _warned:
            _warned.add(name)
            log.warning("optimizer %r needs bitsandbytes, which is not installed (pip install bitsandbytes): "
                        "training with torch AdamW (lr=%g) instead", name, lr)
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    cls = getattr(bnb.optim, BITSANDBYTES_OPTIMIZERS[name])
    if name.startswith("lion"):
        return cls(groups, lr=lr, betas=betas)
    return cls(groups, lr=lr, betas=betas, eps=eps)


def lr_factor(step: int, total_steps: int, warmup_steps: int, kind: str, min_lr_ratio: float) -> float:
    """Multiplier of the base learning rate at ``step``: linear warmup from 0, then ``kind`` decay."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    if kind == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_lr_ratio + (1.0 - min_lr_ratio) * shape


def warmup_schedule(optimizer: Optimizer, total_steps: int, kind: str = "cosine", warmup: float = 0.0,
                    min_lr_ratio: float = 0.0) -> dict:
    """A per-step ``LambdaLR`` in Lightning's scheduler-dict form. ``warmup`` < 1 is a fraction of the run."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; use one of {', '.join(SCHEDULES)}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    warmup_steps = int(round(warmup * total_steps)) if 0 < warmup < 1 else int(warmup)
    scheduler = LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, kind, min_lr_ratio))
    return {"scheduler": scheduler, "interval": "step", "frequency": 1}

