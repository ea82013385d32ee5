"""Branch2D training examples: every supervised target is the same branch's next answer token (checked on a
hand-built group, the reference's bug §1.1), coordinates follow the layout formulas, over-long groups are skipped
and counted, padded rows stay finite in bf16, and the layout loss equals each branch trained ALONE under its 2D
positions (an independent, causal, one-branch-at-a-time reference)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.decoding import PAD, TRUNK, additive_mask
from parallel_decoding.methods.branch2d import (Branch2DCollator, LayoutSettings, apply_interleaved_2d_rope,
                                                build_example)
from parallel_decoding.methods.branch2d.data import group_prompts
from parallel_decoding.methods.inseq.module import in_sequence_loss
from parallel_decoding.methods.sft.collator import IGNORE_INDEX, answer_target

HAND = QuestionGroup(
    id="hand", contexts=("Mira keeps three goats named Pip, Tor and Ulla in a blue barn near the river.",),
    questions=(Question("q1", "How many goats?", ("three",)),
               Question("q2", "What colour is the barn where the goats live?", ("blue",)),
               Question("q3", "Name?", ("Pip, Tor and Ulla",))))
SETTINGS = [LayoutSettings("isolated", "left", 32), LayoutSettings("isolated", "right", 7),
            LayoutSettings("column", "right", 32)]


@pytest.fixture(scope="module")
def patched(tiny_qwen3):
    model, tokenizer, _ = tiny_qwen3
    model = copy.deepcopy(model)
    apply_interleaved_2d_rope(model)
    return model, tokenizer


@pytest.mark.parametrize("settings", SETTINGS)
def test_targets_never_span_branches_on_a_hand_built_group(tiny_qwen3, settings):
    _, tokenizer, _ = tiny_qwen3
    ex = build_example(tokenizer, HAND, settings)
    prefix, prompts = group_prompts(tokenizer, HAND)
    assert list(ex.input_ids[:ex.prefix_len]) == prefix and set(ex.branch[:ex.prefix_len]) == {TRUNK}
    assert all(t == IGNORE_INDEX for t in ex.targets[:ex.prefix_len])
    offsets = [0 if settings.align == "left" else max(map(len, prompts)) - len(p) for p in prompts]
    for b, (question, prompt) in enumerate(zip(HAND.questions, prompts)):
        slots = [i for i, x in enumerate(ex.branch) if x == b]
        answer = tokenizer(answer_target(question.answers[0]), add_special_tokens=False)["input_ids"] + \
            [tokenizer.eos_token_id]
        assert [ex.input_ids[s] for s in slots] == prompt + answer[:-1]  # the last token is a target only
        sequence = prompt + answer  # this branch alone, as it would be written
        for i, s in enumerate(slots):
            if ex.targets[s] != IGNORE_INDEX:
                assert ex.targets[s] == sequence[i + 1]  # the SAME branch's next token
                assert i + 1 >= len(prompt)  # ...and an answer token
        supervised = [ex.targets[s] for s in slots if ex.targets[s] != IGNORE_INDEX]
        assert supervised == answer
        for i, s in enumerate(slots):  # coordinates: y = T + offset + i, pos1d = y, x = y + stride * (b + 1)
            y = ex.prefix_len + offsets[b] + i
            assert (ex.column[s], ex.position[s], ex.x[s]) == (y, y, y + settings.x_stride * (b + 1))
    supervised_slots = [s for s, t in enumerate(ex.targets) if t != IGNORE_INDEX]
    assert len(supervised_slots) == sum(len(tokenizer(answer_target(q.answers[0]), add_special_tokens=False)
                                            ["input_ids"]) + 1 for q in HAND.questions)


def test_over_long_groups_are_skipped_and_counted(tiny_qwen3):
    _, tokenizer, _ = tiny_qwen3
    full = len(build_example(tokenizer, HAND, LayoutSettings()).input_ids)
    collator = Branch2DCollator(tokenizer, max_length=full - 1)
    assert collator.examples(HAND) == []
    assert collator.skipped == {f"longer than max_length={full - 1}": 1}
    assert len(Branch2DCollator(tokenizer, max_length=full).examples(HAND)) == 1


@torch.no_grad()
def alone_loss(model, tokenizer, group, settings):
    """Sum of answer-token cross-entropies, each branch run alone (trunk + branch, causal) under its 2D positions."""
    prefix, prompts = group_prompts(tokenizer, group)
    lengths = [len(p) for p in prompts]
    total, count = 0.0, 0
    for b, (question, prompt) in enumerate(zip(group.questions, prompts)):
        answer = tokenizer(answer_target(question.answers[0]), add_special_tokens=False)["input_ids"] + \
            [tokenizer.eos_token_id]
        tokens = prompt + answer[:-1]
        offset = 0 if settings.align == "left" else max(lengths) - lengths[b]
        ys = list(range(len(prefix))) + [len(prefix) + offset + i for i in range(len(tokens))]
        xs = list(range(len(prefix))) + [y + settings.x_stride * (b + 1) for y in ys[len(prefix):]]
        ids = torch.tensor([prefix + tokens])
        n = ids.shape[1]
        pos = torch.tensor([ys, xs, ys]).unsqueeze(1)
        logits = model(input_ids=ids, attention_mask=additive_mask(torch.ones(1, n, n, dtype=torch.bool).tril(),
                                                                   torch.float32),
                       position_ids=pos, use_cache=False).logits[0]
        first = len(prefix) + len(prompt) - 1
        total += float(F.cross_entropy(logits[first:first + len(answer)], torch.tensor(answer), reduction="sum"))
        count += len(answer)
    return total, count


@pytest.mark.parametrize("settings", SETTINGS[:2])
def test_isolated_loss_equals_each_branch_alone(patched, settings):
    model, tokenizer = patched
    groups = [HAND, *load_synthetic(context_count=2, min_questions=2, max_questions=3, seed=4).groups]
    collator = Branch2DCollator(tokenizer, settings)
    batch = collator([collator.examples(g)[0] for g in groups])  # unequal lengths: padded rows
    with torch.no_grad():
        loss, n = in_sequence_loss(model, batch)
    total, count = 0.0, 0
    for g in groups:
        t, c = alone_loss(model, tokenizer, g, settings)
        total, count = total + t, count + c
    assert n == count
    assert float(loss) == pytest.approx(total / count, rel=1e-5)
    leaky = dict(batch, allowed=torch.ones_like(batch["allowed"]).tril())  # a leaky mask gives another loss
    with torch.no_grad():
        assert float(in_sequence_loss(model, leaky)[0]) != pytest.approx(total / count, rel=1e-4)


def test_padded_rows_stay_finite_in_bf16(patched):
    model, tokenizer = patched
    model = copy.deepcopy(model).to(torch.bfloat16)
    groups = [HAND, *load_synthetic(context_count=2, min_questions=2, max_questions=3, seed=4).groups]
    for settings in SETTINGS:
        collator = Branch2DCollator(tokenizer, settings)
        batch = collator([collator.examples(g)[0] for g in groups])
        assert (batch["branch"] == PAD).any()
        mask = additive_mask(batch["allowed"], torch.bfloat16)
        with torch.no_grad():  # every slot's final hidden state, padded ones included (no LM head: cheap)
            hidden = model.get_decoder()(input_ids=batch["input_ids"], attention_mask=mask,
                                         position_ids=batch["position_ids"], use_cache=False).last_hidden_state
            assert torch.isfinite(hidden).all()
            assert torch.isfinite(in_sequence_loss(model, batch)[0])
