"""Find the JSON a model wrote inside prose: every ``{...}`` / ``[...]`` that parses, wherever it starts.

Strict JSON is tried first; a Python literal (single quotes, ``True``) is a common near-miss and is accepted
as a fallback. Fences and surrounding prose need no stripping because parsing starts at a bracket.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import Any

_OPENERS = re.compile(r"[\[{]")
_CLOSERS = {"{": "}", "[": "]"}


def balanced_end(text: str, start: int) -> int | None:
    """Index past the bracket closing the one at ``start`` (quotes respected), or None when it never closes
    or a bracket closes out of turn."""
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in _CLOSERS:
            stack.append(_CLOSERS[ch])
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return None
            if not stack:
                return i + 1
    return None


def literal_values(text: str) -> Iterator[tuple[int, int, Any]]:
    """``(start, end, value)`` for every bracket in ``text`` where an object or array parses, in order of
    the opening bracket, nested ones included (a caller wanting only the outermost skips ``start < end``
    of the last one it took)."""
    decoder = json.JSONDecoder()
    for match in _OPENERS.finditer(text):
        start = match.start()
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            end = balanced_end(text, start)
            if end is None:
                continue
            try:
                value = ast.literal_eval(text[start:end])
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
        yield start, end, value
