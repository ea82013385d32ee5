"""SFT examples: the ``batch`` strategy's prompt for one question, then its gold answer in answer tags.

The prompt ids are exactly what ``evaluate`` sends (the model's chat template, generation prompt open), so the
model learns the format it is evaluated in; the target is ``<answer>gold</answer>`` followed by the end-of-turn
token, so it also learns to stop. Batches are right-padded; ``labels`` are -100 everywhere except on target
tokens (never on the prompt, never on padding), aligned with ``input_ids`` (the loss shifts them by one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.methods.finetuning import IGNORE_INDEX, ChatCollator, answer_ids


@dataclass(frozen=True)
class SFTExample:
    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]
    group_id: str
    question_id: str


class SFTCollator(ChatCollator):
    def example(self, group: QuestionGroup, question_index: int) -> SFTExample | None:
        question = group.questions[question_index]
        prompt = self.prompt_ids(group, question)
        target = answer_ids(self.tokenizer, question)
        if len(prompt) + len(target) > self.max_length:
            self.skip(f"longer than max_length={self.max_length}")
            return None
        return SFTExample(tuple(prompt), tuple(target), group.id, question.id)

    def examples(self, group: QuestionGroup) -> list[SFTExample]:
        built = (self.example(group, i) for i in range(len(group.questions)))
        return [ex for ex in built if ex is not None]

    def __call__(self, examples: list[SFTExample]) -> dict[str, torch.Tensor]:
        width = max(len(ex.prompt_ids) + len(ex.target_ids) for ex in examples)
        input_ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        for row, ex in enumerate(examples):
            n_prompt, n = len(ex.prompt_ids), len(ex.prompt_ids) + len(ex.target_ids)
            input_ids[row, :n] = torch.tensor(ex.prompt_ids + ex.target_ids, dtype=torch.long)
            attention_mask[row, :n] = 1
            labels[row, n_prompt:n] = torch.tensor(ex.target_ids, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
