"""The LLM edge-list parser on messy outputs (fences, thinking, prose, Python literals, broken JSON), the
``{"Q3": "Q1"}`` = Q1 -> Q3 convention, and the heuristic fallback — with a canned
planner reply here and, in ``tests/dependencies/test_strategy.py``, with the random tiny model for real."""

from __future__ import annotations

import pytest

from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.dependencies.heuristic import heuristic_edges
from parallel_decoding.dependencies.llm import LLMGenerator, label_index, parse_edge_list, planner_messages


def edges(text: str, count: int = 3):
    parsed = parse_edge_list(text, count)
    return None if parsed is None else sorted((i, j, round(c, 3)) for i, j, c in parsed[0])


@pytest.mark.parametrize("text,expected", [
    ('{"edges": [{"Q2": "Q1"}, {"Q3": ["Q1", "Q2"]}]}', [(0, 1, 1.0), (0, 2, 0.75), (1, 2, 0.75)]),
    ('```json\n{"edges": [{"Q3": "Q1"}]}\n```', [(0, 2, 1.0)]),
    ('```\n{"edges": [{"Q3": "Q1"}]}\n```\nThese are the dependencies.', [(0, 2, 1.0)]),
    ('<think>Q1 might need Q2: {"edges": [{"Q1": "Q2"}]}</think>\n{"edges": [{"Q2": "Q1"}]}', [(0, 1, 1.0)]),
    ("Sure! Here is the JSON you asked for:\n{\"edges\": [{\"Q2\": \"Q1\"}]}\nHope this helps {really}.",
     [(0, 1, 1.0)]),
    ("{'edges': [{'Q2': 'Q1'}]}", [(0, 1, 1.0)]),  # a Python literal, a common near-miss
    ('{"edges": [{"source": "Q1", "target": "Q3", "confidence": 0.9}]}', [(0, 2, 0.9)]),
    ('{"edges": [{"from": "q1", "to": "Question 2"}]}', [(0, 1, 1.0)]),
    ('{"edges": [{"question": "Q3", "depends_on": ["Q1", "Q2"]}]}', [(0, 2, 1.0), (1, 2, 1.0)]),
    ('{"Q3": "Q1", "Q2": "Q1"}', [(0, 1, 0.75), (0, 2, 1.0)]),  # a bare mapping without "edges"
    ('[{"Q2": "Q1"}, {"Q3": "Q2"}]', [(0, 1, 1.0), (1, 2, 0.75)]),  # a bare list
    ('{"answer": "Paris"} and then {"edges": [{"Q2": "Q1"}]}', [(0, 1, 1.0)]),  # first usable value wins
    ('{"edges": [{"Q2": "Q1"}, {"Q9": "Q1"}, {"Q3": "Q3"}]}', [(0, 1, 1.0)]),  # bad items dropped, rest kept
    ('{"edges": []}', []),  # "no dependencies" is an answer, not a failure
])
def test_parser_survives_messy_outputs(text, expected):
    assert edges(text) == expected


@pytest.mark.parametrize("text", [
    '{"edges": [{"Q2": "Q1"',  # cut off mid-object
    "Q2 depends on Q1.",  # prose only
    "",
    '{"edges": [{"Q7": "Q1"}]}',  # only unknown labels
    '{"edges": [{"Q1": "Q1"}]}',  # only a self-loop
    '<think>{"edges": [{"Q2": "Q1"}]} and then the budget ran out',  # the only JSON is inside the thinking
    '{"answer": "Q1"}',  # JSON, but no edge list
])
def test_parser_reports_failure_when_nothing_usable(text):
    assert parse_edge_list(text, 3) is None


def test_unusable_items_are_counted():
    parsed = parse_edge_list('{"edges": [{"Q2": "Q1"}, {"Q9": "Q1"}, {"Q3": "Q3"}]}', 3)
    assert parsed is not None and parsed[1] == 2


@pytest.mark.parametrize("value,index", [("Q1", 0), ("q3", 2), ("Question 2", 1), ("2", 1), (3, 2), ("(1)", 0),
                                         ("Q4", None), ("Q0", None), (True, None), ("first", None), (None, None)])
def test_label_index(value, index):
    assert label_index(value, 3) == index


class CannedBackend:
    """Stands in for HFBackend where only the planner's reply matters: returns ``reply`` once."""

    def __init__(self, reply: str) -> None:
        self.reply, self.calls = reply, 0

    def chat_ids(self, messages):
        self.messages = messages
        return [1, 2, 3]

    def generate(self, prompts, batch_size=None, max_new_tokens=None):
        self.calls += 1
        return [[7]]

    def decode(self, ids):
        return self.reply


@pytest.fixture
def group():
    texts = ["Which company built the Wembley stadium?", "Who founded it?", "How many goals did Kane score?"]
    return QuestionGroup("g", tuple(Question(f"id{i}", t, ("x",), None) for i, t in enumerate(texts)))


def test_key_depends_on_value_maps_to_prerequisite_first_edges(group):
    generated = LLMGenerator().generate(group, CannedBackend('```json\n{"edges": [{"Q2": "Q1"}]}\n```'))
    assert not generated.fallback
    assert [e.pair for e in generated.edges] == [("id0", "id1")]  # Q1 -> Q2: Q2 needs Q1's answer


def test_unusable_reply_falls_back_to_the_heuristic(group):
    backend = CannedBackend("I think question two needs question one.")
    generated = LLMGenerator().generate(group, backend)
    assert generated.fallback and backend.calls == 1
    assert generated.edges == heuristic_edges(group)
    assert generated.raw_output == "I think question two needs question one."


def test_prompt_lists_questions_by_label_and_asks_for_the_documented_format(group):
    backend = CannedBackend('{"edges": []}')
    LLMGenerator().generate(group, backend)
    user = backend.messages[-1]["content"]
    assert "Q1: Which company built the Wembley stadium?" in user and "Q3: How many goals" in user
    assert '{"Q2": "Q1"}' in user and "id0" not in user
    assert planner_messages(group) == backend.messages


def test_a_single_question_needs_no_planner_call():
    backend = CannedBackend('{"edges": []}')
    single = QuestionGroup("one", (Question("only", "Who founded it?", ("x",), None),))
    generated = LLMGenerator().generate(single, backend)
    assert generated.edges == [] and not generated.fallback and backend.calls == 0
