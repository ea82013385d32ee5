"""Training examples for ``method=branch2d``: a question group laid out as ONE 2D branch layout.

Any grouped dataset works. With ``trunk="context"`` (the default) a group's single-question chat prompts are split
at their longest common token prefix (system + passage), which becomes the trunk; every question becomes a branch
``question suffix + <answer>gold</answer> + end of turn``, exactly as the ``branch2d`` strategy decodes it.

With ``trunk="context_first_question"`` (the reference's first design, ``0ded0a1``: context + Q1 + A1 in the
trunk) question 1 is an ordinary chat turn in the trunk and questions 2.. are branches after it
(``first_question_layout``): trunk = Q1's single-question prompt + A1 + the start of the next user turn, branches =
the follow-up turns' remaining suffixes. A1 sits in the trunk *as tokens after Q1's own prompt*, not re-rendered by
the chat template as history (Qwen3's template drops the empty think block from history turns), so the trunk's A1
is supervised exactly where the strategy's stage 1 writes it. A group with a single question has no branch: its
example is the trunk alone (an ordinary SFT example on Q1), not skipped.

Coordinates and visibility come from ``BranchLayout`` (``decoder.final_layout``), so training sees exactly the
layout decoding builds, including the rule that a branch's last token (its end-of-turn) is a target only, never an
input.

Labels (the reference, Fzkuji/Parallel-Decoding, shifts them along the flat sequence, across branches; fixed
here): slot t of branch b is trained to predict branch b's next token, taken from that slot's own hidden state, and
only where that token is part of the answer. No (input, target) pair spans two branches; the trunk's only targets
are A1's tokens (and its end of turn) as ordinary causal next tokens. Groups longer than ``max_length`` are
skipped and counted (``MethodCollator.skipped``), never truncated: cutting would drop answers and their end tokens
(the reference's truncation did).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.decoding import PAD, TRUNK, split_shared_prefix
from parallel_decoding.methods.branch2d.decoder import branch_inputs, final_layout
from parallel_decoding.methods.branch2d.layout import Branch2DSlots, BranchLayout
from parallel_decoding.methods.branch2d.rope import stack_positions
from parallel_decoding.methods.finetuning import IGNORE_INDEX, ChatCollator, answer_ids, answer_target
from parallel_decoding.prompting.chat import chat_prompt_ids
from parallel_decoding.prompting.prompts import EXAMPLE_ANSWERS, sequential_turn, single_question_messages

TRUNKS = ("context", "context_first_question")
# Only the template's tokens AFTER A1's turn are kept from a rendered follow-up chat, so A1 is rendered as this fixed
# answer: the real A1 never passes through the template (no re-tokenization, and a generated A1 holding template
# markup such as Qwen3's ``</think>`` cannot change the layout).
STAND_IN = answer_target(EXAMPLE_ANSWERS[0])


@dataclass(frozen=True)
class LayoutSettings:
    mask: str = "isolated"  # isolated | column
    align: str = "left"  # left | right
    x_stride: int = 32  # x = y + x_stride * branch number
    trunk: str = "context"  # context | context_first_question (Q1 + its answer in the trunk, Q2.. branches)

    def __post_init__(self) -> None:
        if self.trunk not in TRUNKS:
            raise ConfigError(f"trunk must be one of {TRUNKS}, got {self.trunk!r}")


@dataclass(frozen=True)
class Branch2DExample:
    input_ids: tuple[int, ...]
    targets: tuple[int, ...]  # per slot: the same branch's (or the trunk's) next token when it is an answer token
    branch: tuple[int, ...]  # per slot: TRUNK or the branch index
    position: tuple[int, ...]  # pos1d
    x: tuple[int, ...]
    column: tuple[int, ...]  # y
    prefix_len: int
    group_id: str


def group_prompts(tokenizer: PreTrainedTokenizerBase, group: QuestionGroup, enable_thinking: bool = False
                  ) -> tuple[list[int], list[list[int]]]:
    """(trunk, branch prompts): the single-question chat prompts split at their common token prefix."""
    prompts = [chat_prompt_ids(tokenizer, single_question_messages(group, q), enable_thinking)
               for q in group.questions]
    return split_shared_prefix(prompts)


def follow_up_messages(group: QuestionGroup, first: Question, first_answer: str, question: Question) -> list[dict]:
    """Q1's single-question chat, its answer, then ``question`` as the next user turn, phrased as ``sequential``
    phrases follow-up turns (the passage again only when ``question`` reads another context than Q1)."""
    return [*single_question_messages(group, first), {"role": "assistant", "content": first_answer},
            {"role": "user", "content": sequential_turn(group, question, False, first)}]


def after_first_answer(tokenizer: PreTrainedTokenizerBase, rendered: Sequence[int], first_prompt: Sequence[int],
                       first_answer: str) -> list[int]:
    """The tokens of a rendered follow-up chat after A1's end of turn: the first EOS past the part the chat shares
    with Q1's prompt (``first_answer``, the rendered A1 text, holds no special token). Checked, so that a template
    that renders earlier turns differently fails loudly instead of putting A1 twice in the trunk."""
    common = 0
    while common < min(len(rendered), len(first_prompt)) and rendered[common] == first_prompt[common]:
        common += 1
    eos = tokenizer.eos_token_id
    end = next((i for i in range(common, len(rendered)) if rendered[i] == eos), None)
    if end is None or not tokenizer.decode(list(rendered[common:end])).rstrip().endswith(first_answer):
        raise ConfigError("trunk=context_first_question: the chat template does not render the first answer as "
                         "Q1's turn closed by the tokenizer's EOS; use trunk=context with this model")
    return [int(t) for t in rendered[end + 1:]]


def first_question_layout(tokenizer: PreTrainedTokenizerBase, group: QuestionGroup, first_answer: Sequence[int],
                          enable_thinking: bool = False) -> tuple[list[int], list[list[int]], int]:
    """(trunk, branch prompts, Q1 prompt length) for ``trunk="context_first_question"``.

    ``first_answer`` is A1's ids closed by EOS (the gold ``answer_ids`` in training, the generated answer in
    decoding). The trunk is Q1's single-question prompt + ``first_answer`` + the shared start of the follow-up
    turns (``follow_up_messages`` after A1's turn, split at their longest common prefix); the branches are Q2..Qn's
    remaining suffixes, none for a single-question group."""
    first_answer = [int(t) for t in first_answer]
    if not first_answer or first_answer[-1] != tokenizer.eos_token_id:
        raise ValueError("the first answer must end with the tokenizer's EOS (its end of turn)")
    first, rest = group.questions[0], group.questions[1:]
    prompt = chat_prompt_ids(tokenizer, single_question_messages(group, first), enable_thinking)
    if not rest:
        return prompt + first_answer, [], len(prompt)
    tails = [after_first_answer(tokenizer, chat_prompt_ids(tokenizer, follow_up_messages(group, first, STAND_IN, q),
                                                           enable_thinking), prompt, STAND_IN)
             for q in rest]
    shared, branches = split_shared_prefix(tails)
    return prompt + first_answer + shared, branches, len(prompt)


def build_example(tokenizer: PreTrainedTokenizerBase, group: QuestionGroup, settings: LayoutSettings,
                  enable_thinking: bool = False) -> Branch2DExample:
    if settings.trunk == "context":
        prefix, prompts = group_prompts(tokenizer, group, enable_thinking)
        questions, targets = group.questions, [IGNORE_INDEX] * len(prefix)
    else:
        first = answer_ids(tokenizer, group.questions[0])
        prefix, prompts, start = first_question_layout(tokenizer, group, first, enable_thinking)
        questions, targets = group.questions[1:], [IGNORE_INDEX] * len(prefix)
        for k, token in enumerate(first):  # causal in the trunk: slot start-1+k predicts A1's token k
            targets[start - 1 + k] = token
    ids = list(prefix)
    if not prompts:  # no branch: the trunk alone, ordinary causal coordinates
        every = tuple(range(len(prefix)))
        return Branch2DExample(tuple(ids), tuple(targets), (TRUNK,) * len(prefix), every, every, every,
                               len(prefix), group.id)
    answers = [answer_ids(tokenizer, question) for question in questions]
    layout = final_layout(len(prefix), prompts, answers, settings.mask, settings.align, settings.x_stride)
    for prompt, answer in zip(prompts, answers):
        tokens = branch_inputs(prompt, answer)
        branch_targets = [IGNORE_INDEX] * len(tokens)
        for k, token in enumerate(answer):  # answer token k is predicted by this branch's slot len(prompt)-1+k
            branch_targets[len(prompt) - 1 + k] = token
        ids += tokens
        targets += branch_targets
    s = layout.slots
    return Branch2DExample(tuple(ids), tuple(targets), tuple(s.branch[0].tolist()), tuple(s.position[0].tolist()),
                           tuple(s.x[0].tolist()), tuple(s.column[0].tolist()), len(prefix), group.id)


def visibility(slots: Branch2DSlots, settings: LayoutSettings) -> torch.Tensor:
    """Bool ``[rows, L, L]`` by the layout's rule (PAD slots see only themselves)."""
    align = "right" if settings.mask == "column" else settings.align  # the rule itself does not read alignment
    rule = BranchLayout(1, mask=settings.mask, align=align, x_stride=settings.x_stride)
    return rule.visible(slots, slots, torch.arange(slots.length).expand(slots.rows, -1))


class Branch2DCollator(ChatCollator):
    def __init__(self, tokenizer: PreTrainedTokenizerBase, settings: LayoutSettings | None = None,
                 enable_thinking: bool = False, max_length: int = 2048) -> None:
        super().__init__(tokenizer, enable_thinking, max_length)
        self.settings = settings or LayoutSettings()

    def examples(self, group: QuestionGroup) -> list[Branch2DExample]:
        example = build_example(self.tokenizer, group, self.settings, self.enable_thinking)
        if len(example.input_ids) > self.max_length:
            self.skip(f"longer than max_length={self.max_length}")
            return []
        return [example]

    def __call__(self, examples: list[Branch2DExample]) -> dict[str, torch.Tensor]:
        """Right-padded rows: ``position_ids`` is ``[3, rows, L]`` (pos1d, x, y); ``allowed`` the bool visibility
        (the loss turns it into a float additive mask of the compute dtype); ``branch`` per slot (PAD = -2)."""
        width = max(len(ex.input_ids) for ex in examples)
        rows = len(examples)

        def padded(field: str, fill: int) -> torch.Tensor:
            out = torch.full((rows, width), fill, dtype=torch.long)
            for row, ex in enumerate(examples):
                values = getattr(ex, field)
                out[row, :len(values)] = torch.tensor(values, dtype=torch.long)
            return out

        slots = Branch2DSlots(branch=padded("branch", PAD), position=padded("position", 0), x=padded("x", 0),
                              column=padded("column", 0))
        return {"input_ids": padded("input_ids", self.pad_id), "targets": padded("targets", IGNORE_INDEX),
                "position_ids": stack_positions(slots.position, slots.x, slots.column),
                "allowed": visibility(slots, self.settings), "branch": slots.branch}
