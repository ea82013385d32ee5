"""JSON (and Python-literal) values found inside prose: where a bracket closes, and which spans parse."""

from __future__ import annotations

import pytest

from parallel_decoding.prompting.literals import balanced_end, literal_values


@pytest.mark.parametrize(("text", "start", "end"), [
    ("{}", 0, 2),
    ("x {'a': '}'} y", 2, 12),                  # a brace inside quotes does not close
    ('{"a": "\\"}"}', 0, 12),                   # nor does an escaped quote end the string
    ("[{'a': [1, 2]}, 3] tail", 0, 18),
    ("{'a': [1}", 0, None),                     # closed out of turn
    ("{'a': 1", 0, None),                       # never closed
])
def test_balanced_end(text, start, end):
    assert balanced_end(text, start) == end


def test_literal_values_in_order_nested_included():
    text = 'Sure: {"edges": [{"Q2": "Q1"}]} and {\'answer\': True} but not {broken'
    found = [(text[s], value) for s, _, value in literal_values(text)]
    assert found == [("{", {"edges": [{"Q2": "Q1"}]}), ("[", [{"Q2": "Q1"}]), ("{", {"Q2": "Q1"}),
                     ("{", {"answer": True})]
