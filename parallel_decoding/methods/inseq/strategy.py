"""Every question a branch after the shared context, all branches in ONE sequence: the prefix is stored once,
each step is one forward carrying one new token per unanswered question, and a mask keeps every answer blind to
the others (``decoding/layout.py``, ``InSequenceLayout``). Greedy answers equal ``independent``'s (fp32)."""

from __future__ import annotations

from parallel_decoding.strategies.batch_shared import BatchSharedStrategy


class InSequenceQAStrategy(BatchSharedStrategy):
    layout = "in_sequence"
