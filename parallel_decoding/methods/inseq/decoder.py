"""In-sequence parallel decoding of model-planned branches (yuyijiong/parallel-decoding-in-one-sequence,
arXiv 2503.20533).

    decoder = InSequenceDecoder(model, tokenizer, stop_token_ids, sampling, InSequenceSettings())
    parallel = decoder.parallel(prompt_ids)   # outline -> branches in one sequence -> conclusion
    normal = decoder.normal(prompt_ids)       # the same prompt, the same sampling settings, one branch

Stage 1 decodes the outline under ``OutlineConstraint`` (titles only) and stops at ``%%%%``. The outline is then
dropped: the stem (text before the first ``####``) extends the cached prompt. Stage 2 decodes every step
``####Title:`` as a branch of that prefix in ONE sequence (``InSequenceLayout``): each branch sees the prompt,
the stem and itself; each forward carries one token per unfinished branch; a branch ends at its next ``####``,
a stop token or its budget. Stage 3 appends the branches (now visible to everything after them, with ordinary
contiguous positions) and ``####%%%%``, and decodes the conclusion.

Fixes over the reference: both runs use identical sampling settings (the reference sampled its parallel run and
decoded the baseline greedily); stage-2 tokens/s is reported separately from end-to-end time; a model that
writes no outline falls back to finishing its stage-1 text normally (the reference's bare ``except`` returned
"Parallel decoding failed"); the prompt cache is computed once and extended, never recomputed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from parallel_decoding.decoding import PrefixState, SamplingSettings, SharedPrefixDecoder
from parallel_decoding.methods.inseq.outline import (BRANCH, END, BranchStartGuard, OutlineConstraint,
                                                     parse_outline)


@dataclass(frozen=True)
class InSequenceSettings:
    max_new_tokens: int = 512  # normal decoding's budget; also stage 1's (a model may answer without an outline)
    branch_max_new_tokens: int = 128  # per stage-2 branch
    conclusion_max_new_tokens: int = 128
    max_branches: int = 8
    max_title_tokens: int = 24
    force_outline: bool = False  # open the outline at the first token (for models that never write ####)


@dataclass
class NormalResult:
    text: str
    generated_tokens: int
    time_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.time_s if self.time_s > 0 else 0.0


@dataclass
class DecodeTrace:
    """The token ids each stage saw and produced (kept out of ``to_dict``: large, and only for inspection/tests)."""

    stage1_ids: list[int] = field(default_factory=list)
    stem_ids: list[int] = field(default_factory=list)
    branch_prompt_ids: list[list[int]] = field(default_factory=list)  # each "####Title:" header
    branch_output_ids: list[list[int]] = field(default_factory=list)
    conclusion_context_ids: list[int] = field(default_factory=list)  # everything before the conclusion
    conclusion_ids: list[int] = field(default_factory=list)


@dataclass
class ParallelResult:
    text: str  # stem + branches + ####%%%% + conclusion (or the fallback's full text)
    mode: str  # "parallel" | "fallback" (no outline: stage 1 was finished as a normal decode)
    stage1_text: str
    stem: str
    titles: list[str]
    branches: list[str]  # each "####Title:content"
    conclusion: str
    generated_tokens: int  # tokens the model produced in all stages (the dropped outline included)
    response_tokens: int  # tokens of the final response: stem + branch contents + conclusion
    stage2_tokens: int
    stage_times_s: dict[str, float] = field(default_factory=dict)
    time_s: float = 0.0
    trace: DecodeTrace = field(default_factory=DecodeTrace, repr=False)

    @property
    def branch_count(self) -> int:
        return len(self.titles)

    @property
    def tokens_per_s(self) -> float:
        """Response tokens per second end to end (what a user waits for, comparable with ``NormalResult``)."""
        return self.response_tokens / self.time_s if self.time_s > 0 else 0.0

    @property
    def stage2_tokens_per_s(self) -> float:
        """Branch tokens per second of stage 2 alone (its headers' prefill and the parallel decode loop)."""
        t = self.stage_times_s.get("stage2", 0.0)
        return self.stage2_tokens / t if t > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["trace"]
        out.update(branch_count=self.branch_count, stage2_tokens_per_s=self.stage2_tokens_per_s,
                   tokens_per_s=self.tokens_per_s)
        return out


class InSequenceDecoder:
    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, stop_token_ids: Sequence[int],
                 sampling: SamplingSettings | None = None, settings: InSequenceSettings | None = None) -> None:
        self.engine = SharedPrefixDecoder(model, tokenizer=tokenizer)
        self.tokenizer = tokenizer
        self.stop_ids = [int(t) for t in stop_token_ids]
        self.sampling = sampling or SamplingSettings()
        self.settings = settings or InSequenceSettings()

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _text(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def _continue(self, state: PrefixState, last: Sequence[int], budget: int, processor=None,
                  stop_strings: Sequence[str] = ()) -> list[int]:
        """Single-branch decoding after ``state`` + ``last`` (``last`` non-empty: it yields the first logits)."""
        result = self.engine.generate(state, [list(last)], "in_sequence", max_new_tokens=budget,
                                      stop_token_ids=self.stop_ids, stop_strings=stop_strings,
                                      sampling=self.sampling, logits_processor=processor)
        return result.sequences[0]

    def normal(self, prompt_ids: Sequence[int]) -> NormalResult:
        start = time.perf_counter()
        state = self.engine.prefill(prompt_ids[:-1])
        ids = self._continue(state, prompt_ids[-1:], self.settings.max_new_tokens)
        return NormalResult(self._text(ids), len(ids), time.perf_counter() - start)

    def parallel(self, prompt_ids: Sequence[int]) -> ParallelResult:
        cfg, times = self.settings, {}
        start = time.perf_counter()
        prompt_state = self.engine.prefill(prompt_ids[:-1])
        constraint = OutlineConstraint(self.tokenizer, self.stop_ids, cfg.max_branches, cfg.max_title_tokens,
                                       cfg.force_outline)
        stage1 = self._continue(prompt_state, prompt_ids[-1:], cfg.max_new_tokens, constraint, stop_strings=[END])
        stage1_text = self.tokenizer.decode(stage1, skip_special_tokens=False)
        outline = parse_outline(stage1_text)
        times["stage1"] = time.perf_counter() - start
        generated = len(stage1)

        if not outline.titles:  # no usable outline: finish what the model wrote as a normal decode
            tail: list[int] = []
            if stage1 and stage1[-1] not in self.stop_ids and len(stage1) < cfg.max_new_tokens:
                state = self.engine.prefill(list(prompt_ids[-1:]) + stage1[:-1], base=prompt_state)
                tail = self._continue(state, stage1[-1:], cfg.max_new_tokens - len(stage1))
            times["fallback"] = time.perf_counter() - start - times["stage1"]
            return ParallelResult(text=self._text(stage1 + tail), mode="fallback", stage1_text=stage1_text,
                                  stem=outline.stem, titles=[], branches=[], conclusion="",
                                  generated_tokens=generated + len(tail), response_tokens=generated + len(tail),
                                  stage2_tokens=0, stage_times_s=times, time_s=time.perf_counter() - start,
                                  trace=DecodeTrace(stage1_ids=stage1, conclusion_ids=tail))

        t2 = time.perf_counter()
        stem_ids = self._stem_ids(stage1, outline.stem)
        stem_state = self.engine.prefill(list(prompt_ids[-1:]) + stem_ids, base=prompt_state)
        times["stem"] = time.perf_counter() - t2  # the outline is dropped; the stem joins the cached prompt
        headers = [self._ids(header) for header in outline.headers]
        result = self.engine.generate(stem_state, headers, "in_sequence", max_new_tokens=cfg.branch_max_new_tokens,
                                      stop_token_ids=self.stop_ids, stop_strings=[BRANCH], sampling=self.sampling,
                                      logits_processor=BranchStartGuard(self.tokenizer))
        times["stage2"] = result.stats.wall_time_s  # branch headers prefill + parallel decoding
        branch_texts = [header + self._branch_content(out.ids)
                        for header, out in zip(outline.headers, result.branches)]
        stage2_tokens = result.stats.generated_tokens

        t3 = time.perf_counter()
        body = "".join(text.rstrip() + "\n\n" for text in branch_texts) + BRANCH + END
        body_ids = self._ids(body)
        final_state = self.engine.prefill(body_ids[:-1], base=stem_state)
        conclusion = self._continue(final_state, body_ids[-1:], cfg.conclusion_max_new_tokens)
        times["stage3"] = time.perf_counter() - t3
        conclusion_text = self._text(conclusion)
        return ParallelResult(
            text=outline.stem + body + conclusion_text, mode="parallel", stage1_text=stage1_text, stem=outline.stem,
            titles=outline.titles, branches=branch_texts, conclusion=conclusion_text,
            generated_tokens=generated + stage2_tokens + len(conclusion),
            response_tokens=len(stem_ids) + stage2_tokens + len(conclusion), stage2_tokens=stage2_tokens,
            stage_times_s=times, time_s=time.perf_counter() - start,
            trace=DecodeTrace(stage1_ids=stage1, stem_ids=stem_ids, branch_prompt_ids=headers,
                              branch_output_ids=result.sequences,
                              conclusion_context_ids=list(prompt_ids) + stem_ids + body_ids, conclusion_ids=conclusion))

    def _stem_ids(self, stage1: list[int], stem: str) -> list[int]:
        """The model's own tokens for the stem when a token boundary falls where ``####`` starts, else the stem
        re-tokenized (a token that spans the boundary, e.g. ``.\\n####``)."""
        for k in range(len(stage1) + 1):
            text = self.tokenizer.decode(stage1[:k], skip_special_tokens=False)
            if text == stem:
                return stage1[:k]
            if len(text) > len(stem):
                break
        return self._ids(stem)

    def _branch_content(self, ids: list[int]) -> str:
        """A branch's text without what ended it (its next ``####``, a stop token)."""
        kept = [t for t in ids if t not in self.stop_ids]
        return self._text(kept).split(BRANCH, 1)[0]
