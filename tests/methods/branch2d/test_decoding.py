"""Parallel branch decoding (one forward per step for every branch, trunk KV shared) is token-identical to an
independent reference that recomputes every step from scratch, without cache, from the 2D position formulas
written out here (not taken from BranchLayout):

- ``isolated``: each branch decoded ALONE (trunk + that branch, causal) under its 2D positions;
- ``column``: teacher-forced consistency, i.e. one uncached forward over the final layout with the reference's
  column mask predicts every generated token (incremental = full). A branch's last token
  (its stop token, or the one that used up its budget) is output only: it is never run through the model, so
  no other branch sees it (training lays examples out the same way).

With ``trunk=context_first_question`` the ``branch2d`` strategy's answer to Q1 is the ``independent`` strategy's,
token for token, and its branches (Q2..) are each branch decoded ALONE after context + Q1 + that generated A1.
"""

from __future__ import annotations

import copy
import dataclasses
import random

import pytest
import torch

from parallel_decoding.backends.base import GenerationSettings

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.decoding import additive_mask
from parallel_decoding.methods.branch2d import apply_interleaved_2d_rope, branch_generate
from parallel_decoding.methods.branch2d.data import first_question_layout
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.methods.branch2d.strategy import Branch2DStrategy
from parallel_decoding.strategies.independent import IndependentStrategy
from parallel_decoding.prompting.prompts import single_question_messages

QWEN_TEXT_IDS = 151643


@pytest.fixture(scope="module")
def patched(tiny_qwen3):
    model, _, stop_ids = tiny_qwen3
    model = copy.deepcopy(model)
    apply_interleaved_2d_rope(model)
    return model, stop_ids


def reference_coords(T, prompt_lengths, b, i, align, stride):
    offset = 0 if align == "left" else max(prompt_lengths) - prompt_lengths[b]
    y = T + offset + i
    return y, y + stride * (b + 1), y


@torch.no_grad()
def alone(model, prefix, prompts, b, max_new, stop, align, stride):
    """Greedy decoding of branch b alone, every step a full uncached forward."""
    lengths = [len(p) for p in prompts]
    out = []
    while len(out) < max_new:
        tokens = list(prompts[b]) + out
        ids = list(prefix) + tokens
        coords = [(j, j, j) for j in range(len(prefix))] + \
                 [reference_coords(len(prefix), lengths, b, i, align, stride) for i in range(len(tokens))]
        pos = torch.tensor(coords).T.unsqueeze(1)  # [3, 1, L]
        n = len(ids)
        mask = additive_mask(torch.ones(1, n, n, dtype=torch.bool).tril(), torch.float32)
        logits = model(input_ids=torch.tensor([ids]), attention_mask=mask, position_ids=pos, use_cache=False).logits
        out.append(int(logits[0, -1].argmax()))
        if out[-1] in stop:
            break
    return out


def random_case(rng):
    prefix = [rng.randrange(QWEN_TEXT_IDS) for _ in range(rng.randint(1, 12))]
    branches = [[rng.randrange(QWEN_TEXT_IDS) for _ in range(rng.randint(1, 6))] for _ in range(rng.choice([1, 2, 3, 4]))]
    return prefix, branches, rng.randint(2, 8)


@pytest.mark.parametrize("align", ["left", "right"])
def test_isolated_parallel_equals_each_branch_alone(patched, align):
    model, stop_ids = patched
    rng = random.Random({"left": 11, "right": 12}[align])
    early = 0
    for case in range(5):
        prefix, branches, max_new = random_case(rng)
        free = branch_generate(model, prefix, branches, align=align, max_new_tokens=max_new, stop_token_ids=stop_ids)
        stop = list(stop_ids)
        if case % 2:  # end some branches early, at different steps
            run = rng.choice(free.sequences)
            stop.append(run[rng.randrange(len(run))])
        got = branch_generate(model, prefix, branches, align=align, max_new_tokens=max_new, stop_token_ids=stop)
        expected = [alone(model, prefix, branches, b, max_new, stop, align, 32) for b in range(len(branches))]
        early += sum(len(e) < max_new for e in expected)
        assert got.sequences == expected, f"case {case}: prefix {prefix} branches {branches}"
        longest = max(len(s) for s in got.sequences)
        assert got.stats.forward_passes == 2 + longest - 1  # trunk, prompts, then ONE forward per step
    assert early > 0


def test_branch_offsets_matter(patched):
    """The check above is not vacuous: the 2D coordinates change what an untrained patched model writes."""
    model, _ = patched
    rng = random.Random(5)
    differs = 0
    for _ in range(4):
        prefix, branches, _ = random_case(rng)
        a = branch_generate(model, prefix, branches, x_stride=32, max_new_tokens=8).sequences
        b = branch_generate(model, prefix, branches, x_stride=1000, max_new_tokens=8).sequences
        differs += a != b
    assert differs > 0


def test_column_incremental_equals_full_forward(patched):
    model, stop_ids = patched
    rng = random.Random(21)
    for case in range(4):
        prefix, branches, max_new = random_case(rng)
        if len(branches) < 2:
            branches.append([rng.randrange(QWEN_TEXT_IDS)])
        stop = list(stop_ids)
        if case % 2:
            free = branch_generate(model, prefix, branches, mask="column", align="right", max_new_tokens=max_new)
            stop.append(free.sequences[0][rng.randrange(len(free.sequences[0]))])
        got = branch_generate(model, prefix, branches, mask="column", align="right", max_new_tokens=max_new,
                              stop_token_ids=stop)
        lengths = [len(p) for p in branches]
        ids = list(prefix)
        coords = [(j, j, j) for j in range(len(prefix))]
        reads = []  # (slot whose logits predict, token expected)
        for b, (p, g) in enumerate(zip(branches, got.sequences)):
            start = len(ids)
            tokens = list(p) + list(g[:-1])  # a branch's last token is output only, never fed back
            ids += tokens
            coords += [reference_coords(len(prefix), lengths, b, i, "right", 32) for i in range(len(tokens))]
            reads += [(start + len(p) - 1 + t, g[t]) for t in range(len(g))]
        column = torch.tensor([c[2] for c in coords])
        n = len(ids)
        allowed = (column[None, :] < column[:, None]) | torch.eye(n, dtype=torch.bool)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), attention_mask=additive_mask(allowed[None], torch.float32),
                           position_ids=torch.tensor(coords).T.unsqueeze(1), use_cache=False).logits[0]
        assert [int(logits[s].argmax()) for s, _ in reads] == [t for _, t in reads], f"case {case}"


def test_unpatched_model_is_refused(tiny_qwen3):
    model, _, _ = tiny_qwen3
    with pytest.raises(ValueError, match="Interleaved2DRoPE"):
        branch_generate(model, [1, 2], [[3]], max_new_tokens=2)


@pytest.mark.parametrize("align", ["left", "right"])
def test_first_question_trunk_decodes_q1_like_independent_and_branches_alone(tiny_qwen3, patched, align):
    model, stop_ids = patched
    _, tokenizer, _ = tiny_qwen3
    backend = HFBackend(ModelBundle(model, tokenizer, "tiny_qwen3"), GenerationSettings(max_new_tokens=6))
    strategy = Branch2DStrategy("branch2d", align=align, x_stride=7, trunk="context_first_question")
    independent = IndependentStrategy("independent")
    groups = load_synthetic(context_count=3, min_questions=2, max_questions=4, seed=3).groups
    groups = [*groups, dataclasses.replace(groups[0], id="one", questions=groups[0].questions[:1], dependencies=())]
    assert max(len(g.questions) for g in groups) >= 3
    for group in groups:
        outcome = strategy.run(group, backend)
        alone_answers = independent.run(group, backend).predictions
        assert outcome.predictions[0].raw_output == alone_answers[0].raw_output
        q1_prompt = backend.chat_ids(single_question_messages(group, group.questions[0]))
        [a1] = backend.generate([q1_prompt])  # what independent wrote for Q1, as tokens
        if len(group.questions) == 1:
            assert outcome.efficiency.generate_calls == 1 and "collapse_sum" not in outcome.extra
            continue
        closed = (a1[:-1] if a1[-1] in stop_ids else a1) + [tokenizer.eos_token_id]
        trunk, prompts, start = first_question_layout(tokenizer, group, closed)
        assert trunk[:start + len(closed)] == q1_prompt + closed
        expected = [alone(model, trunk, prompts, b, 6, stop_ids, align, 7) for b in range(len(prompts))]
        assert strategy._last == (trunk, prompts, expected)  # stage 2: token for token
        assert [p.raw_output for p in outcome.predictions[1:]] == [tokenizer.decode(e, skip_special_tokens=True)
                                                                   for e in expected]
        stats = outcome.efficiency  # both stages counted: stage 1 one forward per token, stage 2 as branch_generate
        assert stats.generate_calls == 2
        assert stats.forward_passes == len(a1) + 2 + max(map(len, expected)) - 1
        assert stats.prompt_tokens == len(q1_prompt) + sum(len(trunk) + len(p) for p in prompts)
        assert stats.generated_tokens == len(a1) + sum(map(len, expected))
        assert ("collapse_sum" in outcome.extra) == (sum(len(e) > 0 for e in expected) >= 2)
