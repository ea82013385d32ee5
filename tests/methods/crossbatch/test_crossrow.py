"""The cross-row task: every answer is in exactly one sibling's passage, never in the row's own."""

from __future__ import annotations

import pytest

from parallel_decoding.config import ConfigError
from parallel_decoding.data.loading import load_groups
from parallel_decoding.methods.crossbatch.crossrow import ATTRIBUTES, load_crossrow
from parallel_decoding.prompting.prompts import single_question_messages
from tests.helpers import compose_config


def test_each_answer_is_stated_only_in_one_sibling_passage():
    groups = load_crossrow(context_count=50, min_questions=2, max_questions=4, seed=3).groups
    assert {len(g.questions) for g in groups} == {2, 3, 4}
    for group in groups:
        assert group.shared_context is None and len(group.contexts) == len(group.questions)
        for i, question in enumerate(group.questions):
            [answer] = question.answers
            own = group.context_of(question)
            holders = [j for j, context in enumerate(group.contexts) if f" {answer}." in context]
            assert holders == [question.metadata["answer_in_context"]] and i not in holders
            assert answer not in own
            prompt = single_question_messages(group, question)[-1]["content"]
            assert own in prompt and all(c not in prompt for c in group.contexts if c != own)


def test_the_task_is_seeded():
    first = load_crossrow(context_count=5, seed=1).groups
    assert first == load_crossrow(context_count=5, seed=1).groups != load_crossrow(context_count=5, seed=2).groups


def test_answers_are_single_tokens_after_the_answer_tag(crossbatch_base):
    tokenizer = crossbatch_base.tokenizer
    tag = tokenizer("<answer>", add_special_tokens=False)["input_ids"]
    for attribute in ATTRIBUTES:
        for value in attribute.values:
            ids = tokenizer(f"<answer>{value}</answer>", add_special_tokens=False)["input_ids"]
            assert ids[:len(tag)] == tag and tokenizer.decode(ids[len(tag):len(tag) + 1]) == value


@pytest.mark.parametrize("sizes", [(1, 2), (3, 2), (2, 5)])
def test_impossible_group_sizes_are_refused(sizes):
    with pytest.raises(ConfigError):
        load_crossrow(context_count=3, min_questions=sizes[0], max_questions=sizes[1])


def test_the_dataset_config_builds_fresh_groups_for_evaluate(tmp_path):
    """dataset=synthetic_crossrow (evaluate's way to held-out groups of another seed) is the training task's loader."""
    cfg = compose_config("evaluate", ["dataset=synthetic_crossrow", "dataset.seed=5", "dataset.group_size=3"],
                         output_dir=tmp_path)
    loaded = load_groups(cfg.dataset)
    assert loaded.groups == load_crossrow(context_count=40, min_questions=3, max_questions=3, seed=5).groups
