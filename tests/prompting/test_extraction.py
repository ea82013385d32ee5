"""Answer extraction from messy model output: tags, JSON, reasoning blocks, per-question labels."""

from __future__ import annotations

import pytest

from parallel_decoding.prompting.extraction import (
    ExtractedAnswer,
    extract_answer,
    extract_tagged_answers,
)

IDS = [f"Q{i}" for i in range(1, 13)]


def A(text: str, valid: bool) -> ExtractedAnswer:
    return ExtractedAnswer(text, valid)


# --- extract_answer -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<answer>Paris</answer>", A("Paris", True)),
        ("Sure.\n<ANSWER>\n  Eiffel Tower \n</Answer> done", A("Eiffel Tower", True)),
        ('<answer>"Paris"</answer><answer>Rome</answer>', A("Paris", True)),
        ("<answer>Paris\nbecause it is the capital", A("Paris", False)),
        ("<answer>Rome\nno, wait: <answer>Paris</answer>", A("Paris", True)),
        ("<answer>Two\nline answer</answer>", A("Two\nline answer", True)),
        ('```json\n{"answer": "Paris"}\n```', A("Paris", True)),
        ('{"answer": "Paris", "confidence": 0.9}\nI chose Paris because {reasons}.', A("Paris", True)),
        ('Here: {"note": "no"} then {"Answer": 1976}', A("1976", True)),
        ('{"reasoning": "use {braces} freely", "answer": "x}y"}', A("x}y", True)),
        ("{'answer': 'Paris'}", A("Paris", True)),
        ("Answer: Paris\nMore text", A("Paris", False)),
        ("\n\n  **Answer:** 'Paris'  \n", A("Paris", False)),
        ("<think>the answer might be <answer>Rome</answer></think>\n<answer>Paris</answer>", A("Paris", True)),
        ("Rome?</think><answer>Paris</answer>", A("Paris", True)),
        ("<answer>Paris</answer><think>unfinished", A("Paris", True)),
        ("<think>never finished <answer>Rome</answer>", A("", False)),
        ("", A("", False)),
    ],
)
def test_extract_answer(raw: str, expected: ExtractedAnswer) -> None:
    assert extract_answer(raw) == expected


# --- extract_tagged_answers ---------------------------------------------------------------------


def test_tagged_lines_and_q1_vs_q10() -> None:
    raw = "\n".join(f"Q{i}: <answer>ans{i}</answer>" for i in (10, 11, 12, 1, 2))
    out = extract_tagged_answers(raw, IDS)
    assert out == {f"Q{i}": A(f"ans{i}", True) for i in (1, 2, 10, 11, 12)}


def test_q1_not_matched_by_q10_line() -> None:
    out = extract_tagged_answers("Q10: <answer>ten</answer>\nQ10: eleven", IDS)
    assert out == {"Q10": A("ten", True)}
    assert "Q1" not in extract_tagged_answers("Q10. plain ten\nQ100: x", IDS)


@pytest.mark.parametrize(
    "line",
    [
        "q1: <answer>Paris</answer>",
        "Q1. <answer>Paris</answer>",
        "Q1 - <answer>Paris</answer>",
        "**Q1**: <answer>Paris</answer>",
        "**Q1:** <answer>Paris</answer>",
        "(Q1) <answer>Paris</answer>",
        "- Q1: <answer> Paris </answer>",
        "Q1:\n<answer>Paris</answer>",
    ],
)
def test_separator_variants(line: str) -> None:
    assert extract_tagged_answers(line + "\nQ2: <answer>Rome</answer>", IDS) == {
        "Q1": A("Paris", True),
        "Q2": A("Rome", True),
    }


@pytest.mark.parametrize(
    "line",
    ["Q1: Paris", "q1. Paris", "Q1 - Paris", "**Q1**: Paris", "**Q1:** **Paris**", "(Q1) Paris", "Q1: <answer>Paris"],
)
def test_missing_or_unclosed_tags_are_invalid(line: str) -> None:
    assert extract_tagged_answers(line, IDS) == {"Q1": A("Paris", False)}


def test_unclosed_tag_does_not_swallow_next_question() -> None:
    raw = "Q1: <answer>Paris\nQ2: <answer>Rome</answer>\nQ3: <answer>Oslo\n**Q4**: Bern</answer>"
    assert extract_tagged_answers(raw, IDS) == {
        "Q1": A("Paris", False),
        "Q2": A("Rome", True),
        "Q3": A("Oslo", False),
        "Q4": A("Bern", False),
    }


def test_missing_and_unknown_and_duplicate_ids() -> None:
    raw = (
        "Q1: <answer>first</answer>\n"
        "Q3: <answer>three</answer>\n"
        "Q99: <answer>unknown</answer>\n"
        "Q1: <answer>second</answer>\n"
        "Q4:\n"
        "Q5: <answer>five</answer>\n"
    )
    out = extract_tagged_answers(raw, ["Q1", "Q2", "Q3", "Q4", "Q5"])
    assert out == {"Q1": A("first", True), "Q3": A("three", True), "Q5": A("five", True)}


def test_tagged_answer_beats_earlier_untagged_mention() -> None:
    raw = "Q1: probably Rome, let me check.\nQ1: <answer>Paris</answer>"
    assert extract_tagged_answers(raw, IDS) == {"Q1": A("Paris", True)}


def test_restated_question_before_tag() -> None:
    raw = "Q1: What is the capital of France?\n<answer>Paris</answer>\nQ2: And of Italy? <answer>Rome</answer>"
    assert extract_tagged_answers(raw, IDS) == {"Q1": A("Paris", True), "Q2": A("Rome", True)}
    raw = "I will answer Q1 to Q3 below.\nQ3: <answer>c</answer>"
    assert extract_tagged_answers(raw, IDS) == {"Q3": A("c", True)}


def test_thinking_blocks_are_ignored() -> None:
    raw = "<think>Q1: <answer>Rome</answer>\nQ2: <answer>x</answer></think>\nQ1: <answer>Paris</answer>"
    assert extract_tagged_answers(raw, IDS) == {"Q1": A("Paris", True)}
    raw = "Q1: <answer>Rome</answer> maybe</think>Q1: <answer>Paris</answer>\nQ2: <answer>B</answer><think>Q3:"
    assert extract_tagged_answers(raw, IDS) == {"Q1": A("Paris", True), "Q2": A("B", True)}


def test_json_mapping() -> None:
    raw = 'Here you go:\n```json\n{"Q1": "Paris", "q10": 1976, "Q99": "x", "Q2": null}\n```\nHope that helps {!}'
    out = extract_tagged_answers(raw, IDS)
    assert out == {"Q1": A("Paris", True), "Q10": A("1976", True), "Q2": A("", True)}


def test_json_nested_and_record_forms() -> None:
    raw = '{"answers": {"Q1": {"answer": "Paris"}, "Q2": "<answer>Rome</answer>"}}'
    assert extract_tagged_answers(raw, IDS) == {"Q1": A("Paris", True), "Q2": A("Rome", True)}
    raw = '[{"id": "Q1", "answer": "Paris"}, {"id": "q3", "answer": "Oslo"}]'
    assert extract_tagged_answers(raw, IDS) == {"Q1": A("Paris", True), "Q3": A("Oslo", True)}


def test_mixed_sources_prefer_tags() -> None:
    raw = 'Q1: <answer>Paris</answer>\nQ2: Rome\n{"Q1": "Lyon", "Q3": "Oslo"}'
    assert extract_tagged_answers(raw, ["Q1", "Q2", "Q3"]) == {
        "Q1": A("Paris", True),
        "Q2": A("Rome", False),
        "Q3": A("Oslo", True),
    }


def test_arbitrary_ids_and_empty_inputs() -> None:
    ids = ["a.1", "a.10", "B-2"]
    raw = "A.10: <answer>ten</answer>\nb-2 - two\na.1) <answer>one</answer>"
    assert extract_tagged_answers(raw, ids) == {"a.10": A("ten", True), "B-2": A("two", False), "a.1": A("one", True)}
    assert extract_tagged_answers("", IDS) == {}
    assert extract_tagged_answers("Q1: <answer>x</answer>", []) == {}
    assert extract_tagged_answers("no labels here, just prose", IDS) == {}
