"""Training examples for ``method=inseq``: a question group laid out as ONE in-sequence layout.

The group's single-question chat prompts are split at their longest common token prefix (system + passage),
exactly as ``inseq_qa`` decodes them; every question becomes a branch ``question suffix + <answer>gold</answer>
+ end of turn`` placed after the prefix, all branches one after another. Positions and visibility come from
``InSequenceLayout`` (each branch sees the prefix and itself, positions restart at the prefix end per branch),
so training sees exactly the layout decoding uses. Labels: slot t is trained to
predict the *same branch's* next token, and only where that token belongs to the answer; no pair spans two
branches (the reference shifted labels along the flat sequence, across branches).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.decoding import PAD, InSequenceLayout, Slots, split_shared_prefix
from parallel_decoding.methods.finetuning import IGNORE_INDEX, ChatCollator, answer_ids
from parallel_decoding.prompting.chat import chat_prompt_ids
from parallel_decoding.prompting.prompts import single_question_messages


@dataclass(frozen=True)
class InSequenceExample:
    input_ids: tuple[int, ...]
    targets: tuple[int, ...]  # per slot: the id it must predict, or IGNORE_INDEX
    branch: tuple[int, ...]  # per slot: TRUNK, or the question's branch index
    position: tuple[int, ...]  # per slot: its position id
    prefix_len: int
    group_id: str


def build_example(tokenizer: PreTrainedTokenizerBase, group: QuestionGroup, enable_thinking: bool = False
                  ) -> InSequenceExample:
    prompts = [chat_prompt_ids(tokenizer, single_question_messages(group, q), enable_thinking)
               for q in group.questions]
    prefix, suffixes = split_shared_prefix(prompts)
    branches, answer_from = [], []
    for question, suffix in zip(group.questions, suffixes):
        target = answer_ids(tokenizer, question)
        branches.append(suffix + target)
        answer_from.append(len(suffix))
    layout = InSequenceLayout(len(branches))
    layout.start(len(prefix))
    layout.place({b: tokens for b, tokens in enumerate(branches)})
    ids = list(prefix) + [t for tokens in branches for t in tokens]
    targets = [IGNORE_INDEX] * len(ids)
    slot = len(prefix)
    for tokens, first_answer in zip(branches, answer_from):
        for k in range(first_answer, len(tokens)):  # answer token k is predicted from token k-1 of this branch
            targets[slot + k - 1] = tokens[k]
        slot += len(tokens)
    return InSequenceExample(tuple(ids), tuple(targets), tuple(layout.slots.branch[0].tolist()),
                             tuple(layout.slots.position[0].tolist()), len(prefix), group.id)


def visibility(branch: torch.Tensor) -> torch.Tensor:
    """Bool ``[rows, L, L]`` from per-slot branch ids (``[rows, L]``, PAD for padding): the layout's rule."""
    rows, length = branch.shape
    table = Slots(branch=branch, position=torch.zeros_like(branch))  # visibility does not read positions
    return InSequenceLayout(1).visible(table, table, torch.arange(length).expand(rows, -1))


class InSequenceCollator(ChatCollator):
    def __init__(self, tokenizer: PreTrainedTokenizerBase, enable_thinking: bool = False,
                 max_length: int = 2048) -> None:
        super().__init__(tokenizer, enable_thinking, max_length)

    def examples(self, group: QuestionGroup) -> list[InSequenceExample]:
        example = build_example(self.tokenizer, group, self.enable_thinking)
        if len(example.input_ids) > self.max_length:
            self.skip(f"longer than max_length={self.max_length}")
            return []
        return [example]

    def __call__(self, examples: list[InSequenceExample]) -> dict[str, torch.Tensor]:
        """Right-padded rows; ``allowed`` is the bool visibility (PAD slots see only themselves): the method turns
        it into a float additive mask of the compute dtype."""
        width = max(len(ex.input_ids) for ex in examples)
        rows = len(examples)
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        targets = torch.full((rows, width), IGNORE_INDEX, dtype=torch.long)
        branch = torch.full((rows, width), PAD, dtype=torch.long)
        position = torch.zeros((rows, width), dtype=torch.long)
        for row, ex in enumerate(examples):
            n = len(ex.input_ids)
            input_ids[row, :n] = torch.tensor(ex.input_ids)
            targets[row, :n] = torch.tensor(ex.targets)
            branch[row, :n] = torch.tensor(ex.branch)
            position[row, :n] = torch.tensor(ex.position)
        return {"input_ids": input_ids, "targets": targets, "position_ids": position,
                "allowed": visibility(branch)}
