"""The forward (noising) process of masked diffusion, every setting honoured.

Per sequence: ``t ~ U(0, 1)``, ``s = schedule(t)``, ``p = (1 - eps) * s + eps``, then ``p = max(p,
min_masking_rate)``. Each eligible token (everything in pretraining, only the answer in SFT: the prompt is
never noised) is noised independently with probability ``p`` or, with probability ``span_prob`` for that
sequence, one contiguous span of ``round(n_eligible * p)`` eligible tokens is noised instead. At least one
eligible token is always noised. ``kind=mask`` writes the mask id, ``kind=random_replace`` a uniformly drawn
real-text id; either way the noised set M is returned, so losses score replaced positions too.

Schedules: ``uniform`` s=t, ``cosine`` s=(1-cos(pi t))/2, ``power`` s=t**power, ``sigmoid``
s=1/(1+exp(-sigmoid_scale (t-1/2))). The reference ignored every one of these settings (its train config had no
``noise`` field); here each is read from ``method.noise`` and a test shows it takes effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from parallel_decoding.config import ConfigError

SCHEDULES = ("uniform", "cosine", "power", "sigmoid")
NOISE_KINDS = ("mask", "random_replace")


@dataclass(frozen=True)
class NoiseSettings:
    schedule: str = "uniform"
    eps: float = 1e-3  # floor of p, so no sequence is left clean
    power: float = 2.0  # exponent of the power schedule
    sigmoid_scale: float = 12.0  # steepness of the sigmoid schedule
    kind: str = "mask"  # mask | random_replace
    min_masking_rate: float = 0.0  # p is raised to at least this
    span_prob: float = 0.0  # probability that a sequence is noised as one contiguous span
    reweight_cap: float | None = None  # losses weight by 1/max(p, 1/cap) instead of 1/p (None: no cap)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown noise schedule {self.schedule!r}; use one of {', '.join(SCHEDULES)}")
        if self.kind not in NOISE_KINDS:
            raise ConfigError(f"unknown noise kind {self.kind!r}; use one of {', '.join(NOISE_KINDS)}")
        if not 0 <= self.eps < 1 or not 0 <= self.min_masking_rate <= 1 or not 0 <= self.span_prob <= 1:
            raise ConfigError("noise eps must be in [0, 1), min_masking_rate and span_prob in [0, 1]")
        if self.reweight_cap is not None and self.reweight_cap < 1:
            raise ConfigError(f"reweight_cap must be >= 1 (a weight cap), got {self.reweight_cap}")


def schedule_value(t: torch.Tensor, settings: NoiseSettings) -> torch.Tensor:
    if settings.schedule == "uniform":
        return t
    if settings.schedule == "cosine":
        return 0.5 * (1 - torch.cos(math.pi * t))
    if settings.schedule == "power":
        return t ** settings.power
    return torch.sigmoid(settings.sigmoid_scale * (t - 0.5))


def masking_probability(t: torch.Tensor, settings: NoiseSettings) -> torch.Tensor:
    """``p(t)`` per sequence."""
    p = (1 - settings.eps) * schedule_value(t, settings) + settings.eps
    return p.clamp(min=settings.min_masking_rate, max=1.0)


def loss_weight(p: torch.Tensor, reweight_cap: float | None) -> torch.Tensor:
    """The ELBO weight 1/p, optionally capped at ``reweight_cap`` (i.e. p floored at 1/cap)."""
    if reweight_cap is None:
        return 1.0 / p
    return 1.0 / p.clamp(min=1.0 / reweight_cap)


@dataclass
class NoisedBatch:
    input_ids: torch.Tensor  # [B, L] the noised sequence the model reads
    noised: torch.Tensor  # [B, L] bool, M: positions whose token was replaced
    p: torch.Tensor  # [B] masking probability of each sequence


def _rand(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, device=device, generator=generator)


def apply_noise(input_ids: torch.Tensor, eligible: torch.Tensor, settings: NoiseSettings, mask_token_id: int,
                replace_vocab_size: int | None = None, generator: torch.Generator | None = None,
                t: torch.Tensor | None = None) -> NoisedBatch:
    """Noise ``input_ids`` where ``eligible``; ``t`` (per sequence) is drawn unless given (tests pin it).

    ``replace_vocab_size``: ``random_replace`` draws ids in ``[0, replace_vocab_size)`` (the real tokens).
    """
    batch, length = input_ids.shape
    device = input_ids.device
    eligible = eligible.bool()
    if t is None:
        t = _rand((batch,), device, generator)
    p = masking_probability(t.to(device=device, dtype=torch.float32), settings)

    noised = (_rand((batch, length), device, generator) < p[:, None]) & eligible
    n_eligible = eligible.sum(-1)
    rank = eligible.long().cumsum(-1) - 1  # index of each eligible position among its row's eligible ones
    if settings.span_prob > 0:
        span_rows = _rand((batch,), device, generator) < settings.span_prob
        span_len = torch.round(n_eligible.float() * p).long().clamp(min=1)
        span_len = torch.minimum(span_len, n_eligible.clamp(min=1))
        room = (n_eligible - span_len + 1).clamp(min=1)
        start = (_rand((batch,), device, generator) * room).long()
        span = eligible & (rank >= start[:, None]) & (rank < (start + span_len)[:, None])
        noised = torch.where(span_rows[:, None], span, noised)

    empty = (noised.sum(-1) == 0) & (n_eligible > 0)  # at least one noised token per sequence
    if empty.any():
        pick = (_rand((batch,), device, generator) * n_eligible.clamp(min=1)).long()
        forced = eligible & (rank == pick[:, None])
        noised = noised | (forced & empty[:, None])

    if settings.kind == "mask":
        replacement = torch.full_like(input_ids, mask_token_id)
    else:
        if replace_vocab_size is None or replace_vocab_size < 1:
            raise ValueError("random_replace needs replace_vocab_size (the number of real tokens)")
        replacement = (_rand((batch, length), device, generator) * replace_vocab_size).long()
    return NoisedBatch(torch.where(noised, replacement, input_ids), noised, p)
