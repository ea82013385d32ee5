"""Where every cached token sits, which position it has, and who may attend to whom: layouts as data.

A decode over a shared prefix keeps one KV cache of shape ``[rows, heads, slots, dim]``. A *layout* records,
for every row and slot of that cache, the metadata of the token stored there (``Slots``: its branch and its
position id) and derives from it, for each forward, the ``position_ids`` and a float additive 4D attention mask
(0 = visible, the dtype's minimum = blocked). Nothing is patched into the model: the engine passes both tensors
to an ordinary HF forward.

Two layouts share the same visibility rule (a token sees the shared prefix and the earlier tokens of its own
branch, nothing else) and differ only in where branch tokens go:

- ``BatchSharedLayout``: one row per branch; the prefix is computed once and its cache copied into every row.
- ``InSequenceLayout``: one row; every branch's tokens are appended to the same sequence, so the prefix is
  stored once and each step is a single forward of one new token per active branch.

In both, a branch's k-th token gets position ``prefix_len + k``, as if the branch alone continued the prefix.

Extending: a 2D-RoPE branch layout (as in Fzkuji/Parallel-Decoding) subclasses ``Layout`` with a ``Slots``
subclass that adds a ``column`` field, fills it in ``_new_slots``, overrides ``visible`` with the column rule
(``y_k < y_q`` or the same slot) and returns the (x, y) coordinates from ``extra_inputs`` for its RoPE patch. The
engine needs nothing else: it only calls ``start``/``place``/``retire`` and reads the ``Forward`` they return.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, replace
from typing import Mapping, Sequence

import torch

TRUNK = -1  # the shared prefix: visible to every token after it
PAD = -2  # filler slot (unequal prompt lengths in one batch): visible to nobody but itself


@dataclass
class Slots:
    """Per-slot metadata, every field ``[rows, n]``. Subclasses add fields (e.g. a 2D column)."""

    branch: torch.Tensor  # TRUNK, PAD or the branch index
    position: torch.Tensor  # the position id the token was (or will be) run with

    @property
    def rows(self) -> int:
        return self.branch.shape[0]

    @property
    def length(self) -> int:
        return self.branch.shape[1]

    def cat(self, other: "Slots") -> "Slots":
        return replace(self, **{f.name: torch.cat([getattr(self, f.name), getattr(other, f.name)], dim=1)
                                for f in fields(self)})

    def select_rows(self, rows: torch.Tensor) -> "Slots":
        return replace(self, **{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def select_slots(self, slots: torch.Tensor) -> "Slots":
        return replace(self, **{f.name: getattr(self, f.name)[:, slots] for f in fields(self)})

    def expand_rows(self, rows: int) -> "Slots":
        return replace(self, **{f.name: getattr(self, f.name).expand(rows, -1).clone() for f in fields(self)})


@dataclass
class Forward:
    """Everything one model call needs, plus where each branch's next-token logits come out.

    ``logits_to_keep`` is ``[rows, k]`` (HF's per-row positions form): the model only projects those positions
    onto the vocabulary; ``branch_logit`` maps a branch to its ``(row, j)`` in the ``[rows, k, vocab]`` logits.
    """

    input_ids: torch.Tensor  # [rows, q]
    position_ids: torch.Tensor  # [rows, q]
    attention_mask: torch.Tensor  # [rows, 1, q, slots after this call], float additive
    logits_to_keep: torch.Tensor  # [rows, k]
    branch_logit: dict[int, tuple[int, int]]
    extra_inputs: dict[str, torch.Tensor]  # layout-specific model kwargs (e.g. 2D positions); empty here

    @property
    def tokens(self) -> int:
        return int(self.input_ids.numel())


@dataclass
class CacheEdit:
    """How the cache must shrink after branches finished: keep these rows and/or these slots (None = all)."""

    rows: torch.Tensor | None = None
    slots: torch.Tensor | None = None


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Bool ``[rows, q, k]`` -> float ``[rows, 1, q, k]``: 0 where allowed, ``finfo(dtype).min`` where blocked.

    Float, not bool: transformers' eager attention *adds* the mask to the scores, so a bool mask there would add
    1/0 instead of blocking. Every query row must allow at least itself, so softmax never sees a fully blocked row
    (a NaN source in low precision)."""
    if not bool(allowed.any(dim=-1).all()):
        raise ValueError("a query slot may attend to nothing; every slot must at least see itself")
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask.unsqueeze(1)


class Layout(ABC):
    """Slot bookkeeping and mask construction shared by every layout; subclasses decide the arrangement.

    Lifecycle (driven by the engine): ``start(prefix_len)`` registers the prefix (already in a batch-1 cache),
    ``rows_for_prefix()`` says how the engine should replicate that cache, then ``place(tokens)`` once with each
    branch's prompt and once per decode step with each active branch's new token; ``retire(branches)`` when
    branches finish returns the ``CacheEdit`` that frees their compute.
    """

    def __init__(self, num_branches: int, dtype: torch.dtype = torch.float32) -> None:
        if num_branches < 1:
            raise ValueError(f"a layout needs at least one branch, got {num_branches}")
        self.num_branches = num_branches
        self.dtype = dtype
        self.prefix_len = 0
        self.slots: Slots | None = None
        self.next_index = [0] * num_branches  # tokens of each branch placed so far
        self.active: list[int] = list(range(num_branches))

    # -- the rule -----------------------------------------------------------------------------------------------
    def visible(self, query: Slots, keys: Slots, query_slot: torch.Tensor) -> torch.Tensor:
        """Bool ``[rows, q, k]``: query token i may attend to key slot j.

        A token sees the prefix and the earlier tokens of its own branch, never another branch, and always itself
        (a PAD slot sees only itself: its output is never read, it just must not be an all-blocked row).
        Causality comes from slot order: within a branch, tokens are stored in the order they were produced."""
        slot = torch.arange(keys.length)
        causal = slot[None, None, :] <= query_slot[:, :, None]
        kb, qb = keys.branch[:, None, :], query.branch[:, :, None]
        allowed = ((kb == TRUNK) | (kb == qb)) & (qb != PAD) & causal  # PAD queries: only themselves
        return allowed | (slot[None, None, :] == query_slot[:, :, None])

    def full_visibility(self) -> torch.Tensor:
        """Bool ``[rows, slots, slots]`` over everything placed so far: the mask one uncached forward over the
        final layout needs (training, and the "incremental = full" check of cached decoding)."""
        if self.slots is None:
            raise RuntimeError("call start(prefix_len) first")
        every = torch.arange(self.slots.length).expand(self.slots.rows, -1)
        return self.visible(self.slots, self.slots, every)

    def extra_inputs(self, query: Slots) -> dict[str, torch.Tensor]:
        """Additional model kwargs derived from the new slots (a 2D-RoPE layout returns its coordinates)."""
        return {}

    def _new_slots(self, branch: torch.Tensor, index: torch.Tensor) -> Slots:
        """Metadata for new tokens: ``branch`` and ``index`` (the token's index within its branch) are
        ``[rows, q]``; PAD entries get the position of the row's previous token (any value works, it is masked)."""
        position = self.prefix_len + index
        return Slots(branch=branch, position=position)

    # -- lifecycle --------------------------------------------------------------------------------------------
    def prefix_slots(self, prefix_len: int) -> Slots:
        return Slots(branch=torch.full((1, prefix_len), TRUNK, dtype=torch.long),
                     position=torch.arange(prefix_len).unsqueeze(0))

    def start(self, prefix_len: int) -> None:
        self.prefix_len = prefix_len
        self.slots = self.prefix_slots(prefix_len)

    @abstractmethod
    def rows_for_prefix(self) -> int:
        """How many rows the prefix cache must be replicated to (it is computed once, in one row)."""

    @abstractmethod
    def place(self, tokens: Mapping[int, Sequence[int]]) -> Forward:
        """Append each listed branch's tokens and build the forward that computes them."""

    @abstractmethod
    def retire(self, branches: Sequence[int]) -> CacheEdit | None:
        """Mark branches finished; return how the cache must shrink (None: unchanged)."""

    # -- helpers ----------------------------------------------------------------------------------------------
    def _check(self, tokens: Mapping[int, Sequence[int]]) -> None:
        if self.slots is None:
            raise RuntimeError("call start(prefix_len) before place()")
        for b, ids in tokens.items():
            if b not in self.active:
                raise ValueError(f"branch {b} is not active")
            if len(ids) == 0:
                raise ValueError(f"branch {b} was given no tokens")

    def _forward(self, input_ids: torch.Tensor, new: Slots, keep: torch.Tensor,
                 branch_logit: dict[int, tuple[int, int]]) -> Forward:
        old_len = self.slots.length
        self.slots = self.slots.cat(new)
        query_slot = (old_len + torch.arange(new.length)).expand(new.rows, -1)
        allowed = self.visible(new, self.slots, query_slot)
        return Forward(input_ids=input_ids, position_ids=new.position.clone(),
                       attention_mask=additive_mask(allowed, self.dtype), logits_to_keep=keep,
                       branch_logit=branch_logit, extra_inputs=self.extra_inputs(new))


class BatchSharedLayout(Layout):
    """One cache row per active branch; the prefix is replicated into every row, never recomputed.

    Branch prompts of unequal length are right-padded with PAD slots (masked for everyone), so after the prompt
    prefill every row advances by exactly one slot per step. A finished branch's row is dropped from the cache."""

    def __init__(self, num_branches: int, dtype: torch.dtype = torch.float32, pad_token_id: int = 0) -> None:
        super().__init__(num_branches, dtype)
        self.pad_token_id = pad_token_id
        self.row_branch: list[int] = list(range(num_branches))  # which branch each cache row holds

    def rows_for_prefix(self) -> int:
        return self.num_branches

    def start(self, prefix_len: int) -> None:
        super().start(prefix_len)
        self.slots = self.slots.expand_rows(self.num_branches)

    def place(self, tokens: Mapping[int, Sequence[int]]) -> Forward:
        self._check(tokens)
        if set(tokens) != set(self.row_branch):
            raise ValueError("the batch-shared layout advances every active branch together")
        width = max(len(ids) for ids in tokens.values())
        rows = len(self.row_branch)
        input_ids = torch.full((rows, width), self.pad_token_id, dtype=torch.long)
        branch = torch.full((rows, width), PAD, dtype=torch.long)
        index = torch.zeros((rows, width), dtype=torch.long)
        keep = torch.zeros((rows, 1), dtype=torch.long)
        for row, b in enumerate(self.row_branch):
            ids = tokens[b]
            n = len(ids)
            input_ids[row, :n] = torch.tensor(list(ids), dtype=torch.long)
            branch[row, :n] = b
            index[row, :] = self.next_index[b] + torch.arange(width).clamp(max=n - 1)
            keep[row, 0] = n - 1
            self.next_index[b] += n
        new = self._new_slots(branch, index)
        return self._forward(input_ids, new, keep, {b: (row, 0) for row, b in enumerate(self.row_branch)})

    def retire(self, branches: Sequence[int]) -> CacheEdit | None:
        done = set(branches)
        self.active = [b for b in self.active if b not in done]
        keep_rows = [row for row, b in enumerate(self.row_branch) if b not in done]
        if len(keep_rows) == len(self.row_branch):
            return None
        rows = torch.tensor(keep_rows, dtype=torch.long)
        self.row_branch = [self.row_branch[r] for r in keep_rows]
        self.slots = self.slots.select_rows(rows)
        return CacheEdit(rows=rows)


class InSequenceLayout(Layout):
    """All branches in one row after the prefix (stage 2 of yuyijiong/parallel-decoding-in-one-sequence,
    arXiv 2503.20533).

    Each forward carries the new tokens of the active branches side by side; the mask lets each see the prefix
    and its own branch only, and positions continue from the prefix per branch. When a branch finishes, its slots
    are removed from the cache (they were invisible to every other branch, so nothing else changes) and it never
    again costs a query or a key."""

    def rows_for_prefix(self) -> int:
        return 1

    def place(self, tokens: Mapping[int, Sequence[int]]) -> Forward:
        self._check(tokens)
        order = [b for b in self.active if b in tokens]
        ids, branch, index, keep, branch_logit = [], [], [], [], {}
        for b in order:
            n = len(tokens[b])
            ids.extend(int(t) for t in tokens[b])
            branch.extend([b] * n)
            index.extend(range(self.next_index[b], self.next_index[b] + n))
            self.next_index[b] += n
            branch_logit[b] = (0, len(keep))
            keep.append(len(ids) - 1)
        new = self._new_slots(torch.tensor([branch], dtype=torch.long), torch.tensor([index], dtype=torch.long))
        return self._forward(torch.tensor([ids], dtype=torch.long), new, torch.tensor([keep], dtype=torch.long),
                             branch_logit)

    def retire(self, branches: Sequence[int]) -> CacheEdit | None:
        done = set(branches)
        self.active = [b for b in self.active if b not in done]
        keep = ~torch.isin(self.slots.branch[0], torch.tensor(sorted(done), dtype=torch.long))
        if bool(keep.all()):
            return None
        slots = keep.nonzero().squeeze(1)
        self.slots = self.slots.select_slots(slots)
        return CacheEdit(slots=slots)


LAYOUTS = {"batch_shared": BatchSharedLayout, "in_sequence": InSequenceLayout}


def make_layout(kind: str, num_branches: int, dtype: torch.dtype = torch.float32, pad_token_id: int = 0) -> Layout:
    if kind == "batch_shared":
        return BatchSharedLayout(num_branches, dtype, pad_token_id)
    if kind == "in_sequence":
        return InSequenceLayout(num_branches, dtype)
    raise ValueError(f"unknown layout {kind!r}; choose one of {sorted(LAYOUTS)}")
