"""Remove a model's reasoning (``<think>``/``<thinking>`` blocks) before its answer is read.

One rule for answer extraction, the dependency planner and the multiple-choice metric, so an answer quoted
while thinking is never mistaken for the final one.
"""

from __future__ import annotations

import re

_THINK_BLOCK = re.compile(r"<think(?:ing)?\s*>.*?</think(?:ing)?\s*>", re.IGNORECASE | re.DOTALL)
# Everything up to the last closing tag (the chat template may have opened the block in the prompt), and
# everything from an opening tag that is never closed (generation ran out mid-thought).
_REASONING = re.compile(r"^.*</think(?:ing)?\s*>|<think(?:ing)?\s*>.*$", re.IGNORECASE | re.DOTALL)


def strip_thinking(text: str, *, keep_between_blocks: bool = True) -> str:
    """``text`` without its reasoning.

    Always dropped: everything before the last closing tag, and everything after an opening tag that is
    never closed. ``keep_between_blocks`` decides what happens to text *between* complete blocks
    (``x<think>..</think>y``): kept (``xy``) when answers are extracted, since a model may write, think
    again and go on; dropped (``y``) by the multiple-choice metric, which reads an option letter anywhere
    and so counts all that came before the last thought as thinking.
    """
    if keep_between_blocks:
        text = _THINK_BLOCK.sub("", text)
    return _REASONING.sub("", text)
