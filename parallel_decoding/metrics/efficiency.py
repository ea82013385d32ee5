"""Cost accounting shared by every strategy, so their efficiency figures are comparable.

``dedup_prompt_tokens`` counts the prompt tokens a perfect prefix cache would compute: the number of nodes in
a trie over every prompt sent for a group. A context shared by N prompts is counted once; a growing chat
history (``sequential``) counts each turn's new tokens only. ``computed_prompt_tokens`` is what the backend
actually ran through the model after its cache hits: every row's prompt for HF ``generate``; the prefix once
plus each branch for the shared-prefix engines; prompt minus ``num_cached_tokens`` for vLLM; prompt minus the
server's ``cached_tokens`` for ``api``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Iterable

EFFICIENCY_FIELDS = ("latency_s", "prompt_tokens", "dedup_prompt_tokens", "computed_prompt_tokens", "generated_tokens",
                     "forward_passes", "generate_calls")


@dataclass
class EfficiencyStats:
    latency_s: float = 0.0
    prompt_tokens: int = 0  # prompt tokens as sent, padding excluded, summed over every call
    dedup_prompt_tokens: int = 0  # distinct prompt prefixes (shared prefixes counted once)
    computed_prompt_tokens: int = 0  # prompt tokens the backend actually ran through the model (after cache hits)
    generated_tokens: int = 0  # tokens produced, stop token included, padding excluded
    forward_passes: int = 0  # model forward calls (one prefill or decode step of a batch = one; vLLM: engine steps)
    generate_calls: int = 0  # decoder invocations (HF generate calls, engine runs)

    def __add__(self, other: "EfficiencyStats") -> "EfficiencyStats":
        return EfficiencyStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def sum(cls, items: Iterable["EfficiencyStats"]) -> "EfficiencyStats":
        total = cls()
        for item in items:
            total = total + item
        return total


class PrefixTrie:
    """Counts distinct token prefixes across sequences (the deduplicated prompt cost)."""

    def __init__(self) -> None:
        self._root: dict = {}
        self.size = 0

    def add(self, tokens: Iterable[int]) -> None:
        node = self._root
        for tok in tokens:
            child = node.get(tok)
            if child is None:
                child = node[tok] = {}
                self.size += 1
            node = child
