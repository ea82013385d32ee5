"""Splitting per-branch prompts into one shared prefix plus branch suffixes, on token ids.

The split is the longest common prefix of the *token id lists* of the full prompts, never a tokenization of
separately rendered pieces: BPE merges across the boundary (e.g. a passage's last word with the question's
first characters) would otherwise change the ids, and the answers would no longer equal independent decoding.
"""

from __future__ import annotations

from typing import Sequence


def split_shared_prefix(prompts: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """``(prefix, suffixes)`` with ``prefix + suffixes[i] == prompts[i]`` and every suffix non-empty.

    The prefix is capped one token short of the shortest prompt so every branch keeps a last token of its own
    (its logits start the branch's answer); for a single prompt that makes the prefix all but the last token."""
    if not prompts:
        raise ValueError("no prompts to split")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("an empty prompt has no token to continue from")
    limit = min(len(p) for p in prompts) - 1
    first = prompts[0]
    cut = 0
    while cut < limit and all(p[cut] == first[cut] for p in prompts):
        cut += 1
    return [int(t) for t in first[:cut]], [[int(t) for t in p[cut:]] for p in prompts]
