"""Stage 1 of in-sequence parallel decoding: the model writes an outline of independent steps, titles only.

Format (yuyijiong/parallel-decoding-in-one-sequence, arXiv 2503.20533): a free stem, then
``####Title 1:......\\n\\n####Title 2:......\\n\\n####%%%%``.
``OutlineConstraint`` is a logits processor that enforces it once the model opens the outline with ``####``:

- inside a title, newlines, ``#`` and stop tokens are banned, and a title longer than ``max_title_tokens`` is
  closed with a forced ``:``;
- after a title's ``:``, the tokens of ``......\\n\\n####`` are forced (the step's content is left out);
- right after ``####`` the model writes another title or ``%%%%``; a second ``####`` cannot follow (``#`` is
  banned there), and once ``max_branches`` titles exist ``%%%%`` is forced.

Fixes over the reference: only a ``:`` *inside an outline title* triggers the forcing (the reference forced
``......`` after any colon, stem included); the stem may be empty (the reference banned a marker as the first
token only because its cache surgery needed a stem); a model that never writes ``####`` is left alone, and
``parse_outline`` then reports zero titles instead of raising (the reference hid that behind a bare except).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerBase

BRANCH = "####"
END = "%%%%"
ELLIPSIS = "......"
STEP_SUFFIX = ELLIPSIS + "\n\n" + BRANCH  # forced after each outline title's colon


@dataclass(frozen=True)
class TokenClasses:
    """Boolean masks over the model's vocabulary (logit rows), computed once per tokenizer."""

    newline: torch.Tensor
    hash: torch.Tensor
    dots: torch.Tensor  # "...", "......", " ..." : tokens that would copy the outline's placeholder
    unknown: torch.Tensor  # logit rows the tokenizer has no token for (padded embedding rows)


_CLASSES: "weakref.WeakKeyDictionary[PreTrainedTokenizerBase, dict[int, TokenClasses]]" = weakref.WeakKeyDictionary()


def token_classes(tokenizer: PreTrainedTokenizerBase, vocab_rows: int) -> TokenClasses:
    per_size = _CLASSES.setdefault(tokenizer, {})
    if vocab_rows not in per_size:
        known = min(len(tokenizer), vocab_rows)
        single = [[i] for i in range(known)]
        backend = getattr(tokenizer, "backend_tokenizer", None)  # the Rust decoder: ~10x faster than batch_decode
        texts = backend.decode_batch(single, skip_special_tokens=False) if backend is not None else \
            tokenizer.batch_decode(single, skip_special_tokens=False)
        newline, hashes, dots = (torch.zeros(vocab_rows, dtype=torch.bool) for _ in range(3))
        unknown = torch.zeros(vocab_rows, dtype=torch.bool)
        unknown[known:] = True
        for i, text in enumerate(texts):
            newline[i] = "\n" in text or "\r" in text
            hashes[i] = "#" in text
            stripped = text.strip()
            dots[i] = len(stripped) >= 2 and set(stripped) <= {".", "…"} or stripped == "…"
        per_size[vocab_rows] = TokenClasses(newline, hashes, dots, unknown)
    return per_size[vocab_rows]


@dataclass
class Outline:
    stem: str  # text before the first ####
    titles: list[str]  # complete titles, in order, stripped
    headers: list[str]  # each step's opening exactly as the model wrote it: "####" + raw title + ":"
    closed: bool  # the outline ended with ####%%%%


def parse_outline(text: str) -> Outline:
    """Split stage-1 text into stem and titles; a title counts only once its ``:`` was written."""
    start = text.find(BRANCH)
    if start < 0:
        return Outline(stem=text, titles=[], headers=[], closed=False)
    titles, headers, closed = [], [], False
    for item in text[start + len(BRANCH):].split(BRANCH):
        if item.startswith(END):
            closed = True
            break
        if ":" in item:
            raw = item.split(":", 1)[0]
            if raw.strip() and "\n" not in raw:
                titles.append(raw.strip())
                headers.append(f"{BRANCH}{raw}:")
    return Outline(stem=text[:start], titles=titles, headers=headers, closed=closed)


class OutlineConstraint:
    """Logits processor for one stage-1 decode (stateful: it queues forced tokens). Engine signature:
    ``(branch, generated_ids, logits) -> logits``."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop_token_ids: Sequence[int], max_branches: int = 8,
                 max_title_tokens: int = 24, force_outline: bool = False) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = [int(t) for t in stop_token_ids]
        self.max_branches = max_branches
        self.max_title_tokens = max_title_tokens
        self.force_outline = force_outline  # open the outline at once (a model that would never do it itself)
        self.suffix_ids = self._ids(STEP_SUFFIX)
        self.end_ids = self._ids(END)
        self.colon_ids = self._ids(":")
        self.branch_ids = self._ids(BRANCH)
        self.queue: list[int] = []
        self.items_closed = 0  # outline items whose forced suffix has been queued
        self.title_start = 0  # len(generated) when the current title began

    def _ids(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if self.tokenizer.decode(ids) != text:
            raise ValueError(f"the tokenizer cannot spell {text!r} token by token")
        return ids

    @staticmethod
    def _force(logits: torch.Tensor, token: int) -> torch.Tensor:
        forced = torch.full_like(logits, float("-inf"))
        forced[token] = 0.0
        return forced

    def __call__(self, branch: int, generated: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
        if self.queue:
            return self._force(logits, self.queue.pop(0))
        text = self.tokenizer.decode(list(generated), skip_special_tokens=False)
        start = text.find(BRANCH)
        if start < 0:
            if self.force_outline and not generated:
                self.queue = self.branch_ids[1:]
                self.title_start = len(self.branch_ids)
                return self._force(logits, self.branch_ids[0])
            return logits
        items = text[start + len(BRANCH):].split(BRANCH)
        current, done = items[-1], len(items) - 1
        classes = token_classes(self.tokenizer, logits.shape[-1])
        if current == "":  # right after ####: a new title or the end marker
            self.title_start = len(generated)
            if done >= self.max_branches:
                self.queue = self.end_ids[1:]
                return self._force(logits, self.end_ids[0])
            return self._ban(logits, classes, newline=True)
        if END.startswith(current):  # the end marker begun: complete it (the %%%% stop string ends stage 1)
            rest = self._ids(END[len(current):])
            self.queue = rest[1:]
            return self._force(logits, rest[0])
        if ":" in current and self.items_closed <= done:
            self.items_closed = done + 1
            self.queue = self.suffix_ids[1:]
            return self._force(logits, self.suffix_ids[0])
        if len(generated) - self.title_start >= self.max_title_tokens:
            self.queue = self.colon_ids[1:]
            return self._force(logits, self.colon_ids[0])
        return self._ban(logits, classes, newline=True)

    def _ban(self, logits: torch.Tensor, classes: TokenClasses, newline: bool) -> torch.Tensor:
        banned = classes.hash | classes.unknown | (classes.newline if newline else torch.zeros_like(classes.hash))
        out = logits.masked_fill(banned.to(logits.device), float("-inf"))
        if self.stop_ids:
            out[self.stop_ids] = float("-inf")
        return out


class BranchStartGuard:
    """Stage 2: a branch must not open with the outline's ``......`` placeholder (the reference's ban)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer

    def __call__(self, branch: int, generated: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
        if generated:
            return logits
        classes = token_classes(self.tokenizer, logits.shape[-1])
        return logits.masked_fill((classes.dots | classes.unknown).to(logits.device), float("-inf"))
