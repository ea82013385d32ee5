"""Choosing each branch's next token: greedy, or seeded temperature / nucleus (top-p) sampling.

Every branch owns its random generator (seeded from the run seed and the branch index), so a branch's sampled
continuation does not depend on how many other branches happen to share its decode steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from parallel_decoding.config import ConfigError


@dataclass(frozen=True)
class SamplingSettings:
    do_sample: bool = False  # False: greedy argmax (deterministic, comparable with HF generate)
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.do_sample and self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0 when sampling (do_sample=true), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability mass reaches ``top_p`` (at least one);
    the rest get ``-inf``. ``logits`` is ``[n, vocab]``."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the strictly more likely tokens
    remove_sorted = mass_before >= top_p
    remove_sorted[..., 0] = False
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


class TokenChooser:
    def __init__(self, settings: SamplingSettings, num_branches: int) -> None:
        self.settings = settings
        self.generators = []
        if settings.do_sample:
            for branch in range(num_branches):
                gen = torch.Generator(device="cpu")
                gen.manual_seed(settings.seed * 1_000_003 + branch)
                self.generators.append(gen)

    def choose(self, logits: torch.Tensor, branches: Sequence[int]) -> list[int]:
        """One token per row of ``logits`` (``[n, vocab]``), row i belonging to ``branches[i]``."""
        logits = logits.float()
        if not self.settings.do_sample:
            return logits.argmax(dim=-1).tolist()
        scores = top_p_filter(logits / self.settings.temperature, self.settings.top_p)
        probs = scores.softmax(dim=-1).cpu()
        return [int(torch.multinomial(probs[i], 1, generator=self.generators[b])) for i, b in enumerate(branches)]
