"""SFT examples: the ``batch`` strategy's prompt for one question, then its gold answer in answer tags.

The prompt ids are exactly what ``evaluate`` sends (the model's chat template, generation prompt open), so the
model learns the format it is evaluated in; the target is ``<answer>gold</answer>`` followed by the end-of-turn
token, so it also learns to stop. Batches are right-padded; ``labels`` are -100 everywhere except on target
tokens (never on the prompt, never on padding), aligned with ``input_ids`` (the loss shifts them by one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.prompting.prompts import single_question_messages
from parallel_decoding.training.datamodule import MethodCollator
from parallel_decoding.prompting.chat import chat_prompt_ids

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SFTExample:
    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]
    group_id: str
    question_id: str


def answer_target(answer: str) -> str:
    """The text the model is taught to write, in the format ``extract_answer`` reads first."""
    return f"<answer>{answer.strip()}</answer>"


def answer_ids(tokenizer: PreTrainedTokenizerBase, question: Question) -> list[int]:
    """The ids a model is taught to write for ``question``: its first gold answer in answer tags, then EOS (SQuAD
    lists the same span several times; one target is enough)."""
    answer = next(a for a in question.answers if a.strip())
    return list(tokenizer(answer_target(answer), add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]


class ChatCollator(MethodCollator):
    """What every method that trains on chat prompts + tagged answers shares: tokenizer, thinking switch, length
    cap, pad id (EOS when the tokenizer has no pad token)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, enable_thinking: bool = False, max_length: int = 1024) -> None:
        super().__init__()
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token to end answers with")
        self.tokenizer = tokenizer
        self.enable_thinking = enable_thinking
        self.max_length = max_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def prompt_ids(self, group: QuestionGroup, question: Question) -> list[int]:
        """The ``batch`` strategy's prompt for one question, as ``evaluate`` sends it."""
        return chat_prompt_ids(self.tokenizer, single_question_messages(group, question), self.enable_thinking)


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
