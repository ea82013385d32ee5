"""Judge reply parsing and aggregation (the HTTP side is tested against a real server in tests/backends)."""

import pytest

from parallel_decoding.evaluation.judge import build_judge, judge_means, judge_messages, parse_judgement

GOOD = {"fluency": 4, "relevance": 5, "completeness": 3, "proficiency": 4}


@pytest.mark.parametrize("text", [
    '{"fluency": 4, "relevance": 5, "completeness": 3, "proficiency": 4}',
    '```json\n{"fluency": 4, "relevance": 5, "completeness": 3, "proficiency": 4, "reasoning": "ok"}\n```',
    'Scores: {"Fluency": "4", "Relevance": 5.0, "Completeness": 3, "Proficiency": 4} done',
    '{"note": {"x": 1}} then {"fluency": 4, "relevance": 5, "completeness": 3, "proficiency": 4}',
])
def test_parses_the_four_scores(text):
    assert parse_judgement(text) == GOOD


@pytest.mark.parametrize("text", [
    "",
    "fluency 4, relevance 5",
    '{"fluency": 4, "relevance": 5, "completeness": 3}',             # a dimension missing
    '{"fluency": 6, "relevance": 5, "completeness": 3, "proficiency": 4}',  # out of range
    '{"fluency": 4.5, "relevance": 5, "completeness": 3, "proficiency": 4}',
    '{"fluency": true, "relevance": 5, "completeness": 3, "proficiency": 4}',
])
def test_rejects_anything_else(text):
    assert parse_judgement(text) is None


def test_means_exclude_failures():
    means = judge_means([GOOD, None, {"fluency": 2, "relevance": 3, "completeness": 1, "proficiency": 2}])
    assert means == {"judge_fluency": 3.0, "judge_relevance": 4.0, "judge_completeness": 2.0,
                     "judge_proficiency": 3.0, "judge_mean": 3.0}


def test_prompt_carries_context_reference_and_answer():
    [system, user] = judge_messages("诊断？", "右侧腹股沟斜疝。", "斜疝", context="患者，男")
    assert "JSON" in system["content"]
    assert all(part in user["content"] for part in ("## Context\n患者，男", "诊断？", "右侧腹股沟斜疝。", "斜疝"))


def test_disabled_judge_is_none():
    assert build_judge(None) is None and build_judge({"enabled": False, "base_url": "x", "model": "m"}) is None
