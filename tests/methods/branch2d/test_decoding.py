"""Parallel branch decoding (one forward per step for every branch, trunk KV shared) is token-identical to an
independent reference that recomputes every step from scratch, without cache, from the 2D position formulas
written out here (not taken from BranchLayout):

- ``isolated``: each branch decoded ALONE (trunk + that branch, causal) under its 2D positions;
- ``column``: teacher-forced consistency, i.e. one uncached forward over the final layout with the reference's
  column mask predicts every generated token (incremental = full, ALGORITHMS.md §5.5). A branch's last token
  (its stop token, or the one that used up its budget) is output only: it is never run through the model, so
  no other branch sees it (training lays examples out the same way).
"""

from __future__ import annotations

import copy
import random

import pytest
import torch

from parallel_decoding.decoding import additive_mask
from parallel_decoding.methods.branch2d import apply_interleaved_2d_rope, branch_generate

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
