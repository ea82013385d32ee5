"""Token-for-token comparison of decoders against independent references, in the package so the GPU check and
tests share it: answers as token ids (not decoded text), agreement rates, where sequences first diverge and by
how much the reference's logits preferred its token there (a near-tie explains a flip, a wide margin is a bug).

- ``sharpen``: a random model whose greedy continuation depends on context (a fresh one repeats a token);
- ``RecordingBackend``: an ``HFBackend`` that keeps the ids each prediction was decoded from;
- ``compare``: equal sequences, agreement, first divergences;
- ``branch_alone``: one branch of a 2D-RoPE layout decoded alone, every step an uncached forward, from the
  coordinate formulas written out here (not taken from ``BranchLayout``);
- ``divergence_margin``: the reference's logit margin at a divergence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.decoding import additive_mask


def sharpen(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """Scale every decoder-layer matrix by ``factor`` (attention and MLPs then dominate the residual stream)."""
    with torch.no_grad():
        for param in model.model.layers.parameters():
            if param.ndim == 2:
                param.mul_(factor)
    return model.eval()


class RecordingBackend(HFBackend):
    """Keeps, in order, the token ids every strategy prediction was decoded from (``decoded``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decoded: list[list[int]] = []

    def decode(self, ids: Sequence[int]) -> str:
        self.decoded.append([int(t) for t in ids])
        return super().decode(ids)


def answer_tokens(strategy, group, backend: RecordingBackend) -> tuple[Any, list[list[int]]]:
    """``(outcome, one token list per question)`` of ``strategy.run`` on ``group``."""
    backend.decoded = []
    outcome = strategy.run(group, backend)
    tokens = list(backend.decoded)
    if len(tokens) != len(group.questions):
        raise RuntimeError(f"{strategy.name} decoded {len(tokens)} answers for {len(group.questions)} questions")
    return outcome, tokens


@dataclass
class Comparison:
    sequences: int = 0
    equal: int = 0
    tokens: int = 0  # reference tokens
    matched: int = 0  # tokens before the first divergence (all of them for equal sequences)
    divergences: list[dict[str, Any]] = field(default_factory=list)  # the first few

    def add(self, got: Sequence[int], expected: Sequence[int], where: dict[str, Any] | None = None,
            keep: int = 5) -> None:
        got, expected = list(got), list(expected)
        self.sequences += 1
        self.tokens += len(expected)
        if got == expected:
            self.equal += 1
            self.matched += len(expected)
            return
        position = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        self.matched += position
        if len(self.divergences) < keep:
            self.divergences.append({**(where or {}), "position": position,
                                     "got": got[position:position + 3], "expected": expected[position:position + 3],
                                     "got_len": len(got), "expected_len": len(expected)})

    @property
    def all_equal(self) -> bool:
        return self.sequences > 0 and self.equal == self.sequences

    def to_dict(self) -> dict[str, Any]:
        return {"sequences": self.sequences, "equal": self.equal,
                "agreement": round(self.equal / self.sequences, 4) if self.sequences else None,
                "token_agreement": round(self.matched / self.tokens, 4) if self.tokens else None,
                "divergences": self.divergences}


@torch.no_grad()
def divergence_margin(model, prompt: Sequence[int], expected: Sequence[int], position: int,
                      got_token: int | None) -> dict[str, float]:
    """At ``position`` of the reference continuation: the reference model's top-2 logit margin and how much it
    preferred the expected token over the one the other decoder chose (one uncached forward, 1D positions)."""
    device = next(model.parameters()).device
    ids = torch.tensor([list(prompt) + list(expected[:position])], device=device)
    logits = model(input_ids=ids, logits_to_keep=1).logits[0, -1].float()
    top = logits.topk(2).values
    out = {"top2_margin": float(top[0] - top[1])}
    if got_token is not None and position < len(expected):
        out["expected_minus_got"] = float(logits[expected[position]] - logits[got_token])
    return out


def branch_coordinates(trunk_len: int, prompt_lengths: Sequence[int], branch: int, index: int, align: str,
                       stride: int) -> tuple[int, int, int]:
    """(pos1d, x, y) of token ``index`` of ``branch`` (methods/branch2d/layout.py's docstring, written out)."""
    offset = 0 if align == "left" else max(prompt_lengths) - prompt_lengths[branch]
    y = trunk_len + offset + index
    return y, y + stride * (branch + 1), y


@torch.no_grad()
def branch_alone(model, prefix: Sequence[int], prompts: Sequence[Sequence[int]], branch: int, max_new: int,
                 stop: Sequence[int], align: str = "left", stride: int = 32) -> list[int]:
    """Greedy decoding of ``branch`` alone after the trunk ``prefix`` (the ``isolated`` mask's reference): every
    step one uncached forward over trunk + this branch, causal, under the branch's 2D coordinates."""
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    lengths = [len(p) for p in prompts]
    out: list[int] = []
    while len(out) < max_new:
        tokens = list(prompts[branch]) + out
        ids = list(prefix) + tokens
        coords = [(j, j, j) for j in range(len(prefix))] + \
                 [branch_coordinates(len(prefix), lengths, branch, i, align, stride) for i in range(len(tokens))]
        positions = torch.tensor(coords, device=device).T.unsqueeze(1)  # [3, 1, L]
        n = len(ids)
        mask = additive_mask(torch.ones(1, n, n, dtype=torch.bool).tril(), dtype).to(device)
        logits = model(input_ids=torch.tensor([ids], device=device), attention_mask=mask, position_ids=positions,
                       use_cache=False, logits_to_keep=1).logits
        out.append(int(logits[0, -1].argmax()))
        if out[-1] in stop:
            break
    return out
