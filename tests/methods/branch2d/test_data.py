"""Branch2D training examples: every supervised target is the same branch's next answer token (checked on a
hand-built group; the reference shifted labels across branches), coordinates follow the layout formulas,
over-long groups are skipped and counted, padded rows stay finite in bf16, and the layout loss equals each branch
trained ALONE under its 2D positions (an independent, causal, one-branch-at-a-time reference). With
``trunk=context_first_question`` the trunk is Q1's prompt + A1 + the next user turn's start (checked against the
chat written out as text), A1 is supervised causally in the trunk, and a single-question group is exactly sft's
example."""

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
from parallel_decoding.methods.branch2d.data import first_question_layout, group_prompts
from parallel_decoding.methods.finetuning import IGNORE_INDEX, answer_target, in_sequence_loss
from parallel_decoding.methods.sft.collator import SFTCollator
from parallel_decoding.prompting.chat import chat_prompt_ids
from parallel_decoding.prompting.prompts import single_question_messages

HAND = QuestionGroup(
    id="hand", contexts=("Mira keeps three goats named Pip, Tor and Ulla in a blue barn near the river.",),
    questions=(Question("q1", "How many goats?", ("three",)),
               Question("q2", "What colour is the barn where the goats live?", ("blue",)),
               Question("q3", "Name?", ("Pip, Tor and Ulla",))))
SETTINGS = [LayoutSettings("isolated", "left", 32), LayoutSettings("isolated", "right", 7),
            LayoutSettings("column", "right", 32)]
FIRST = [LayoutSettings(s.mask, s.align, s.x_stride, "context_first_question") for s in SETTINGS]
ONE = QuestionGroup(id="one", contexts=HAND.contexts, questions=HAND.questions[:1])


def gold(tokenizer, question):
    return tokenizer(answer_target(question.answers[0]), add_special_tokens=False)["input_ids"] + \
        [tokenizer.eos_token_id]


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


@pytest.mark.parametrize("settings", FIRST)
def test_first_question_trunk_holds_q1_and_a1_and_supervises_them_causally(tiny_qwen3, settings):
    _, tokenizer, _ = tiny_qwen3
    ex = build_example(tokenizer, HAND, settings)
    first, rest = HAND.questions[0], HAND.questions[1:]
    q1_prompt = chat_prompt_ids(tokenizer, single_question_messages(HAND, first), False)
    a1 = gold(tokenizer, first)
    T = ex.prefix_len
    trunk = list(ex.input_ids[:T])
    assert trunk[:len(q1_prompt)] == q1_prompt and trunk[len(q1_prompt):len(q1_prompt) + len(a1)] == a1
    assert set(ex.branch[:T]) == {TRUNK} and set(ex.branch[T:]) == set(range(len(rest)))
    assert ex.position[:T] == ex.x[:T] == ex.column[:T] == tuple(range(T))  # the unpatched model's positions
    # trunk targets: exactly A1's tokens (end of turn included), each the trunk's own next token
    trunk_targets = {s: t for s, t in enumerate(ex.targets[:T]) if t != IGNORE_INDEX}
    assert trunk_targets == {len(q1_prompt) - 1 + k: token for k, token in enumerate(a1)}
    assert all(ex.input_ids[s + 1] == t and ex.branch[s + 1] == TRUNK for s, t in trunk_targets.items())
    prompts = []
    for b, question in enumerate(rest):
        slots = [i for i, x in enumerate(ex.branch) if x == b]
        answer = gold(tokenizer, question)
        prompt = [ex.input_ids[s] for s in slots[:len(slots) - len(answer) + 1]]
        prompts.append(prompt)
        assert [ex.input_ids[s] for s in slots[len(prompt):]] == answer[:-1]  # the last token is a target only
        # trunk + branch prompt = Q1's chat, A1, then this question as the next turn (Qwen's ChatML, written out)
        assert tokenizer.decode(trunk + prompt) == tokenizer.decode(q1_prompt) + (
            "<answer>three</answer><|im_end|>\n<|im_start|>user\nQuestion: " + question.text +
            "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
        sequence = prompt + answer  # this branch alone, as it would be written
        supervised = [(i, ex.targets[s]) for i, s in enumerate(slots) if ex.targets[s] != IGNORE_INDEX]
        assert [t for _, t in supervised] == answer
        assert all(t == sequence[i + 1] and i + 1 >= len(prompt) for i, t in supervised)  # same branch's next
    offsets = [0 if settings.align == "left" else max(map(len, prompts)) - len(p) for p in prompts]
    for s in range(T, len(ex.input_ids)):
        b = ex.branch[s]
        y = T + offsets[b] + ex.branch[T:s].count(b)
        assert (ex.column[s], ex.position[s], ex.x[s]) == (y, y, y + settings.x_stride * (b + 1))
    assert sum(t != IGNORE_INDEX for t in ex.targets) == len(a1) + sum(len(gold(tokenizer, q)) for q in rest)


def test_first_question_trunk_of_a_single_question_group_is_sfts_example(tiny_qwen3):
    """No branch to place: the trunk alone, with sft's prompt, answer and (shifted) labels."""
    _, tokenizer, _ = tiny_qwen3
    ex = build_example(tokenizer, ONE, FIRST[0])
    sft = SFTCollator(tokenizer)
    batch = sft(sft.examples(ONE))
    assert list(ex.input_ids) == batch["input_ids"][0].tolist()
    assert list(ex.targets) == batch["labels"][0, 1:].tolist() + [IGNORE_INDEX]
    assert set(ex.branch) == {TRUNK} and ex.position == ex.x == ex.column == tuple(range(len(ex.input_ids)))
    assert ex.prefix_len == len(ex.input_ids)


@pytest.mark.parametrize("settings", [SETTINGS[0], FIRST[0]])
def test_over_long_groups_are_skipped_and_counted(tiny_qwen3, settings):
    _, tokenizer, _ = tiny_qwen3
    full = len(build_example(tokenizer, HAND, settings).input_ids)
    collator = Branch2DCollator(tokenizer, settings, max_length=full - 1)
    assert collator.examples(HAND) == []
    assert collator.skipped == {f"longer than max_length={full - 1}": 1}
    assert len(Branch2DCollator(tokenizer, settings, max_length=full).examples(HAND)) == 1


@torch.no_grad()
def alone_loss(model, tokenizer, group, settings):
    """Sum of answer-token cross-entropies, each branch run alone (trunk + branch, causal) under its 2D positions;
    with the first-question trunk also A1's, from the trunk alone through the model's own causal forward."""
    questions = group.questions
    total, count = 0.0, 0
    if settings.trunk == "context":
        prefix, prompts = group_prompts(tokenizer, group)
    else:
        a1 = gold(tokenizer, questions[0])
        prefix, prompts, start = first_question_layout(tokenizer, group, a1)
        questions = questions[1:]
        logits = model(input_ids=torch.tensor([prefix]), use_cache=False).logits[0]
        total += float(F.cross_entropy(logits[start - 1:start - 1 + len(a1)], torch.tensor(a1), reduction="sum"))
        count += len(a1)
    lengths = [len(p) for p in prompts]
    for b, (question, prompt) in enumerate(zip(questions, prompts)):
        answer = gold(tokenizer, question)
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


@pytest.mark.parametrize("settings", SETTINGS[:2] + FIRST[:2])
def test_isolated_loss_equals_each_branch_alone(patched, settings):
    model, tokenizer = patched
    groups = [HAND, ONE, *load_synthetic(context_count=2, min_questions=2, max_questions=3, seed=4).groups]
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
    for settings in SETTINGS + FIRST[2:]:
        collator = Branch2DCollator(tokenizer, settings)
        batch = collator([collator.examples(g)[0] for g in groups])
        assert (batch["branch"] == PAD).any()
        mask = additive_mask(batch["allowed"], torch.bfloat16)
        with torch.no_grad():  # every slot's final hidden state, padded ones included (no LM head: cheap)
            hidden = model.get_decoder()(input_ids=batch["input_ids"], attention_mask=mask,
                                         position_ids=batch["position_ids"], use_cache=False).last_hidden_state
            assert torch.isfinite(hidden).all()
            assert torch.isfinite(in_sequence_loss(model, batch)[0])
