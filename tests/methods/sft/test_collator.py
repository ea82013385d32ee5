"""SFT examples: evaluate's prompt, then <answer>gold</answer> and the end-of-turn token; labels nowhere else."""

from __future__ import annotations

import pytest

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.methods.finetuning import IGNORE_INDEX
from parallel_decoding.methods.sft.collator import SFTCollator
from parallel_decoding.prompting.prompts import single_question_messages


@pytest.fixture(scope="module")
def group():
    return load_synthetic(context_count=1, min_questions=3, max_questions=3, seed=2).groups[0]


def test_prompt_is_exactly_what_evaluate_sends(tiny_bundle, group):
    collator = SFTCollator(tiny_bundle.tokenizer)
    backend = HFBackend(tiny_bundle)
    for index, question in enumerate(group.questions):
        example = collator.example(group, index)
        assert list(example.prompt_ids) == backend.chat_ids(single_question_messages(group, question))


def test_labels_are_the_answer_and_end_of_turn_only(tiny_bundle, group):
    tokenizer = tiny_bundle.tokenizer
    collator = SFTCollator(tokenizer)
    examples = collator.examples(group)
    batch = collator(examples)
    for row, (example, question) in enumerate(zip(examples, group.questions)):
        labels = batch["labels"][row]
        targets = labels[labels != IGNORE_INDEX].tolist()
        assert tokenizer.decode(targets) == f"<answer>{question.answers[0]}</answer>{tokenizer.eos_token}"
        n_prompt, n = len(example.prompt_ids), len(example.prompt_ids) + len(example.target_ids)
        assert (labels[:n_prompt] == IGNORE_INDEX).all() and (labels[n:] == IGNORE_INDEX).all()
        assert batch["input_ids"][row, n_prompt:n].tolist() == targets  # labels aligned with the inputs
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (labels.shape[0] - n)  # right padding


def test_too_long_examples_are_skipped_and_counted(tiny_bundle, group):
    collator = SFTCollator(tiny_bundle.tokenizer, max_length=20)
    assert collator.examples(group) == []
    assert collator.skipped == {"longer than max_length=20": len(group.questions)}
