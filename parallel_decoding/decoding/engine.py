"""The shared-prefix decoding engine: N continuations of one prefix, the prefix computed once.

    decoder = SharedPrefixDecoder(model, pad_token_id=tokenizer.pad_token_id, tokenizer=tokenizer)
    result = decoder.generate(prefix_ids, [branch_ids_1, branch_ids_2], layout="in_sequence",
                              max_new_tokens=32, stop_token_ids=[eos_id])
    result.sequences  # one list of generated ids per branch, stop token included

Token ids in, token ids + stats out. The prefix may also be a ``PrefixState`` (a cached prefix reusable by
several decodes, extendable with more tokens), which multi-stage methods use to avoid recomputing a long prompt.

Every model call gets explicit ``position_ids`` and a float additive 4D mask from the layout (``layout.py``); the
KV cache is a ``SlotCache``. Llama/Qwen2/Qwen3 with ``sdpa`` attention and no forward hooks run through the
lean forward (``lean.py``: the same arithmetic without HF's per-call machinery, answers unchanged); everything
else (``eager`` attention, hooked or RoPE-patched models, layouts with extra inputs, ``lean=False``) through an
ordinary HF forward (``model(...)``, so forward hooks see it). Supported: decoder-only HF models whose attention
takes a custom 4D mask — Llama, Qwen2, Qwen3 — with ``sdpa`` or ``eager`` attention.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from parallel_decoding.decoding.cache import SlotCache
from parallel_decoding.decoding.layout import Forward, Layout, additive_mask, make_layout
from parallel_decoding.decoding.lean import LeanForward, LeanOptions, lean_unsupported
from parallel_decoding.decoding.sampling import SamplingSettings, TokenChooser
from parallel_decoding.decoding.stopping import StopCriteria
from parallel_decoding.models.compat import kept_logits, logits_to_keep_arg

SUPPORTED_ATTENTION = ("sdpa", "eager")

# (branch index, ids generated so far by that branch, its next-token logits [vocab]) -> adjusted logits
LogitsProcessor = Callable[[int, Sequence[int], torch.Tensor], torch.Tensor]


@dataclass
class DecodeStats:
    forward_passes: int = 0  # model calls made by this decode (prefix prefill included when computed here)
    prefill_tokens: int = 0  # prompt tokens run through the model: the prefix once, then every branch prompt
    decode_tokens: int = 0  # generated tokens fed back through the model
    generated_tokens: int = 0  # tokens produced, stop tokens included
    steps: int = 0  # decode forwards after the prompt prefill
    prefill_time_s: float = 0.0
    decode_time_s: float = 0.0
    wall_time_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.wall_time_s if self.wall_time_s > 0 else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        """Generated tokens per second of the decode loop only (prefill excluded)."""
        return self.generated_tokens / self.decode_time_s if self.decode_time_s > 0 else 0.0

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out.update(tokens_per_s=self.tokens_per_s, decode_tokens_per_s=self.decode_tokens_per_s)
        return out


@dataclass
class BranchOutput:
    ids: list[int]
    finish_reason: str  # "eos" | "stop_string" | "length"


@dataclass
class DecodeResult:
    branches: list[BranchOutput]
    stats: DecodeStats
    layout: str

    @property
    def sequences(self) -> list[list[int]]:
        return [b.ids for b in self.branches]


@dataclass
class PrefixState:
    """A prefix already run through the model: its ids and a one-row cache. Decodes copy it, never change it."""

    ids: tuple[int, ...]
    cache: SlotCache = field(repr=False)
    stats: DecodeStats = field(default_factory=DecodeStats)  # the cost of computing it

    def __len__(self) -> int:
        return len(self.ids)


class SharedPrefixDecoder:
    def __init__(self, model: PreTrainedModel, pad_token_id: int | None = None,
                 tokenizer: PreTrainedTokenizerBase | None = None, lean: bool | LeanOptions = True) -> None:
        """``lean``: use the lean forward where it covers the model (True, or ``LeanOptions`` for its levers);
        False: always the HF forward."""
        attn = getattr(model.config, "_attn_implementation", None)
        if attn not in SUPPORTED_ATTENTION:
            raise ValueError(f"the shared-prefix engine needs an attention that takes a custom 4D mask "
                             f"({', '.join(SUPPORTED_ATTENTION)}); the model uses {attn!r}. Load it with "
                             f"attn_implementation='sdpa'.")
        self.model = model
        self.tokenizer = tokenizer
        self.pad_token_id = pad_token_id if pad_token_id is not None else (
            tokenizer.pad_token_id if tokenizer is not None and tokenizer.pad_token_id is not None else 0)
        params = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"  # renamed during transformers 5.x
        self.lean_options = (lean if isinstance(lean, LeanOptions) else LeanOptions()) if lean else None
        self._lean: LeanForward | None = None

    def lean_forward(self) -> LeanForward | None:
        """The lean forward for this call, or None where the HF forward must run (checked per call: hooks or a
        RoPE patch may come and go)."""
        if self.lean_options is None or lean_unsupported(self.model) is not None:
            return None
        if self._lean is None or self._lean.options != self.lean_options:
            self._lean = LeanForward(self.model, self.lean_options)
        return self._lean

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # -- model calls --------------------------------------------------------------------------------------------
    def _run(self, fwd: Forward, cache: SlotCache, stats: DecodeStats) -> torch.Tensor:
        """One forward; returns the kept logits ``[rows, k, vocab]``."""
        dev = self.device
        lean = self.lean_forward() if not fwd.extra_inputs else None
        if lean is not None:
            logits = lean(fwd.input_ids.to(dev), fwd.attention_mask.to(dev), fwd.position_ids.to(dev), cache,
                          fwd.logits_to_keep.to(dev))
            stats.forward_passes += 1
            return logits
        keep = fwd.logits_to_keep.to(dev)
        out = self.model(
            input_ids=fwd.input_ids.to(dev),
            attention_mask=fwd.attention_mask.to(dev),
            position_ids=fwd.position_ids.to(dev),
            use_cache=True,
            logits_to_keep=logits_to_keep_arg(keep),
            **{self._cache_kwarg: cache},
            **{k: v.to(dev) for k, v in fwd.extra_inputs.items()},
        )
        stats.forward_passes += 1
        return kept_logits(out.logits, keep)

    @torch.inference_mode()
    def prefill(self, ids: Sequence[int], base: PrefixState | None = None) -> PrefixState:
        """Run ``ids`` as a causal prefix (after ``base``'s tokens when given) and return the reusable state."""
        ids = [int(t) for t in ids]
        start_len = len(base) if base is not None else 0
        cache = base.cache.clone(extra_capacity=len(ids)) if base is not None else SlotCache()
        stats = DecodeStats()
        if ids:
            t0 = time.perf_counter()
            n = len(ids)
            query_slot = start_len + torch.arange(n)
            allowed = torch.arange(start_len + n)[None, None, :] <= query_slot[None, :, None]
            fwd = Forward(input_ids=torch.tensor([ids]), position_ids=query_slot.unsqueeze(0),
                          attention_mask=additive_mask(allowed, self.dtype),
                          logits_to_keep=torch.tensor([[n - 1]]), branch_logit={}, extra_inputs={})
            self._run(fwd, cache, stats)
            stats.prefill_tokens = n
            stats.prefill_time_s = stats.wall_time_s = time.perf_counter() - t0
        previous = base.ids if base is not None else ()
        return PrefixState(ids=tuple(previous) + tuple(ids), cache=cache, stats=stats)

    # -- decoding -----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(
        self,
        prefix: Sequence[int] | PrefixState,
        branches: Sequence[Sequence[int]],
        layout: str | Layout = "batch_shared",
        max_new_tokens: int = 32,
        stop_token_ids: Sequence[int] = (),
        stop_strings: Sequence[str] = (),
        sampling: SamplingSettings | None = None,
        logits_processor: LogitsProcessor | None = None,
        max_new_tokens_per_branch: Sequence[int] | None = None,
    ) -> DecodeResult:
        """Continue ``prefix + branches[i]`` for every i; every branch prompt must hold at least one token."""
        start = time.perf_counter()
        if not branches:
            raise ValueError("no branches to decode")
        if any(len(b) == 0 for b in branches):
            raise ValueError("every branch prompt needs at least one token (its last token yields the first logits)")
        n = len(branches)
        budgets = list(max_new_tokens_per_branch) if max_new_tokens_per_branch is not None else [max_new_tokens] * n
        if len(budgets) != n:
            raise ValueError(f"{len(budgets)} token budgets for {n} branches")
        criteria = [StopCriteria(b, stop_token_ids, stop_strings, self.tokenizer) for b in budgets]
        chooser = TokenChooser(sampling or SamplingSettings(), n)

        stats = DecodeStats()
        state = prefix if isinstance(prefix, PrefixState) else self.prefill(prefix)
        if not isinstance(prefix, PrefixState):
            stats.forward_passes += state.stats.forward_passes
            stats.prefill_tokens += state.stats.prefill_tokens
        lay = layout if isinstance(layout, Layout) else make_layout(layout, n, self.dtype, self.pad_token_id)
        lay.start(len(state))
        longest = max(len(b) for b in branches) + max(budgets)
        extra = longest if lay.rows_for_prefix() > 1 else sum(len(b) for b in branches) + sum(budgets)
        cache = state.cache.fork(lay.rows_for_prefix(), extra_capacity=extra)

        outputs: list[list[int]] = [[] for _ in range(n)]
        reasons: list[str | None] = [None] * n
        fwd = lay.place({b: list(branches[b]) for b in range(n)})
        stats.prefill_tokens += sum(len(b) for b in branches)
        prefill_done = None
        while True:
            logits = self._run(fwd, cache, stats)
            active = sorted(fwd.branch_logit)
            rows = torch.stack([logits[fwd.branch_logit[b]] for b in active])
            if logits_processor is not None:
                rows = torch.stack([logits_processor(b, outputs[b], rows[i]) for i, b in enumerate(active)])
            tokens = chooser.choose(rows, active)
            if prefill_done is None:
                prefill_done = time.perf_counter()
            finished = []
            for b, tok in zip(active, tokens):
                outputs[b].append(int(tok))
                reasons[b] = criteria[b].reason(outputs[b])
                if reasons[b] is not None:
                    finished.append(b)
            if finished:
                edit = lay.retire(finished)
                if edit is not None and edit.rows is not None:
                    cache.select_rows(edit.rows)
                if edit is not None and edit.slots is not None:
                    cache.keep_slots(edit.slots)
            remaining = [b for b in active if reasons[b] is None]
            if not remaining:
                break
            fwd = lay.place({b: [outputs[b][-1]] for b in remaining})
            stats.steps += 1
            stats.decode_tokens += len(remaining)

        end = time.perf_counter()
        stats.generated_tokens = sum(len(o) for o in outputs)
        stats.prefill_time_s = prefill_done - start  # prefix (when computed here) + branch prompts + first token
        stats.decode_time_s = end - prefill_done
        stats.wall_time_s = end - start
        kind = layout if isinstance(layout, str) else type(layout).__name__
        return DecodeResult([BranchOutput(o, r) for o, r in zip(outputs, reasons)], stats, kind)


def prefix_shared_generate(model: PreTrainedModel, prefix_ids: Sequence[int], branch_ids: Sequence[Sequence[int]],
                           layout: str = "batch_shared", tokenizer: PreTrainedTokenizerBase | None = None,
                           **kwargs) -> DecodeResult:
    """One-call form of ``SharedPrefixDecoder(model, tokenizer=tokenizer).generate(...)``."""
    return SharedPrefixDecoder(model, tokenizer=tokenizer).generate(prefix_ids, branch_ids, layout, **kwargs)
