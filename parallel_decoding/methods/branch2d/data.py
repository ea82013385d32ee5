"""Training examples for ``method=branch2d``: a question group laid out as ONE 2D branch layout.

Any grouped dataset works: a group's single-question chat prompts are split at their longest common token prefix
(system + passage), which becomes the trunk; every question becomes a branch ``question suffix +
<answer>gold</answer> + end of turn``, exactly as the ``branch2d`` strategy decodes it. Coordinates and
visibility come from ``BranchLayout`` (``decoder.final_layout``), so training sees exactly the layout decoding
builds, including the rule that a branch's last token (its end-of-turn) is a target only, never an input.

Labels (ALGORITHMS.md §5.4, the reference's bug §1.1 fixed): slot t of branch b is trained to predict branch b's
next token, taken from that slot's own hidden state, and only where that token is part of the answer. No
(input, target) pair spans two branches or touches the trunk. Groups longer than ``max_length`` are skipped and
counted (``MethodCollator.skipped``), never truncated: cutting would drop answers and their end tokens (§1.7).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.decoding import PAD, split_shared_prefix
from parallel_decoding.methods.branch2d.decoder import branch_inputs, final_layout
from parallel_decoding.methods.branch2d.layout import Branch2DSlots, BranchLayout
from parallel_decoding.methods.branch2d.rope import stack_positions
from parallel_decoding.methods.sft.collator import IGNORE_INDEX, ChatCollator, answer_ids, chat_prompt_ids
from parallel_decoding.strategies.prompts import single_question_messages


@dataclass(frozen=True)
class LayoutSettings:
    mask: str = "isolated"  # isolated | column
    align: str = "left"  # left | right
    x_stride: int = 32  # x = y + x_stride * branch number


@dataclass(frozen=True)
class Branch2DExample:
    input_ids: tuple[int, ...]
    targets: tuple[int, ...]  # per slot: the same branch's next token when it is an answer token, else -100
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


def build_example(tokenizer: PreTrainedTokenizerBase, group: QuestionGroup, settings: LayoutSettings,
                  enable_thinking: bool = False) -> Branch2DExample:
    prefix, prompts = group_prompts(tokenizer, group, enable_thinking)
    answers = [answer_ids(tokenizer, question) for question in group.questions]
    layout = final_layout(len(prefix), prompts, answers, settings.mask, settings.align, settings.x_stride)
    ids, targets = list(prefix), [IGNORE_INDEX] * len(prefix)
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
