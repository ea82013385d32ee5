"""The lexical rules, including the reference's substring bug ("it" inside "city") fixed."""

from __future__ import annotations

from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.dependencies.heuristic import (AGGREGATE, REFERENCE, SHARED_KEYWORD, has_aggregate_word,
                                                       has_reference_word, heuristic_edges, keywords)


def group(*texts: str) -> QuestionGroup:
    return QuestionGroup("g", tuple(Question(f"q{i}", t, ("x",), None) for i, t in enumerate(texts)))


def by_pair(g: QuestionGroup) -> dict[tuple[str, str], float]:
    return {e.pair: e.confidence for e in heuristic_edges(g)}


def test_reference_word_links_the_previous_question():
    edges = by_pair(group("Which company built the Wembley stadium?", "How tall is Everest?", "Who founded it?"))
    assert edges == {("q1", "q2"): REFERENCE}


def test_shared_keyword_links_every_earlier_question_that_shares_one():
    edges = by_pair(group("Where was Marie Curie born?", "What is 2 + 2?", "When did Marie Curie die?"))
    assert edges == {("q0", "q2"): SHARED_KEYWORD}


def test_aggregate_word_links_all_earlier_questions_and_the_strongest_rule_wins():
    edges = by_pair(group("How old is Ann?", "Where does Bob live?", "What is the total of those numbers?"))
    assert edges == {("q0", "q2"): AGGREGATE, ("q1", "q2"): REFERENCE}  # "those" beats "total" for q1


def test_english_words_match_whole_words_only():
    # The reference's substring test found "it" in "city"/"with" and "list" in "specialist".
    assert not has_reference_word("Which city hosted the games with Pele?")
    assert not has_aggregate_word("Which specialist treated him?")
    assert has_reference_word("When was it built?") and has_aggregate_word("List the winners.")
    assert by_pair(group("Who won in 1998?", "Which city hosted the games with Pele?")) == {}


def test_chinese_reference_words_and_shared_characters():
    assert has_reference_word("它的首都是哪里？") and has_aggregate_word("一共有多少人？")
    assert {"首", "都"} <= keywords("法国的首都是哪里？")
    edges = by_pair(group("法国的首都是哪里？", "它有多少人口？"))
    assert edges[("q0", "q1")] == REFERENCE


def test_edges_only_point_forward_in_group_order():
    g = group("What is the total of it?", "List them all.", "Compare it with that.")
    order = {q.id: i for i, q in enumerate(g.questions)}
    assert all(order[e.source] < order[e.target] for e in heuristic_edges(g))
