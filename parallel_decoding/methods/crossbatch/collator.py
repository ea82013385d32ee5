"""Cross-batch training examples: one per question group, its rows decoded (and mixed) together.

Each row is exactly what the ``batch`` strategy sends for one question (``single_question_messages`` through
the chat template, generation prompt open) followed by ``<answer>gold</answer>`` and the end-of-turn token, as
in SFT. A batch flattens ``data.batch_size`` groups into rows with ``group_ids`` (rows mix only within their
group). Prompts are left-padded to the batch's longest prompt ``P`` and answers right-padded after it, so
answer token ``t`` of every row sits at column ``P + t`` (``targets[row, t]``; -100 after the answer's end).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.methods.crossbatch.model import left_padded_positions
from parallel_decoding.methods.finetuning import IGNORE_INDEX, ChatCollator, answer_ids


@dataclass(frozen=True)
class CrossBatchRow:
    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]
    question_id: str


@dataclass(frozen=True)
class CrossBatchExample:
    group_id: str
    rows: tuple[CrossBatchRow, ...]


class CrossBatchCollator(ChatCollator):
    def __init__(self, tokenizer: PreTrainedTokenizerBase, enable_thinking: bool = False, max_length: int = 1024,
                 max_answer_tokens: int = 32) -> None:
        super().__init__(tokenizer, enable_thinking, max_length)
        self.max_answer_tokens = max_answer_tokens

    def row(self, group: QuestionGroup, question_index: int) -> CrossBatchRow | None:
        question = group.questions[question_index]
        prompt = self.prompt_ids(group, question)
        target = answer_ids(self.tokenizer, question)
        if len(target) > self.max_answer_tokens:
            self.skip(f"answer longer than max_answer_tokens={self.max_answer_tokens}")
            return None
        if len(prompt) + len(target) > self.max_length:
            self.skip(f"longer than max_length={self.max_length}")
            return None
        return CrossBatchRow(tuple(prompt), tuple(target), question.id)

    def examples(self, group: QuestionGroup) -> list[CrossBatchExample]:
        rows = [r for r in (self.row(group, i) for i in range(len(group.questions))) if r is not None]
        return [CrossBatchExample(group.id, tuple(rows))] if rows else []

    def __call__(self, examples: list[CrossBatchExample]) -> dict[str, torch.Tensor | int]:
        rows = [(index, row) for index, ex in enumerate(examples) for row in ex.rows]
        width = max(len(r.prompt_ids) for _, r in rows)
        steps = max(len(r.target_ids) for _, r in rows)
        input_ids = torch.full((len(rows), width + steps), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width + steps), dtype=torch.long)
        targets = torch.full((len(rows), steps), IGNORE_INDEX, dtype=torch.long)
        for i, (_, row) in enumerate(rows):
            n_prompt, n_target = len(row.prompt_ids), len(row.target_ids)
            input_ids[i, width - n_prompt:width] = torch.tensor(row.prompt_ids, dtype=torch.long)
            input_ids[i, width:width + n_target] = torch.tensor(row.target_ids, dtype=torch.long)
            attention_mask[i, width - n_prompt:width + n_target] = 1
            targets[i, :n_target] = torch.tensor(row.target_ids, dtype=torch.long)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": left_padded_positions(attention_mask),
            "targets": targets,
            "group_ids": torch.tensor([index for index, _ in rows], dtype=torch.long),
            "prompt_width": width,
        }
