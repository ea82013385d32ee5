"""The option-letter extractor (never reads "B" from "Based") and multiple-choice accuracy."""

import pytest

from parallel_decoding.metrics.multiple_choice import choice_scores, extract_choice

OPTIONS = {"A": "London", "B": "Paris", "C": "Rome", "D": "Berlin"}


@pytest.mark.parametrize("text,expected", [
    ("B", "B"),
    ("(B) Paris", "B"),
    ("B. Paris", "B"),
    ("**C**", "C"),
    ("The answer is C.", "C"),
    ("Answer: (D)", "D"),
    ("Based on the passage, the answer is C.", "C"),
    ("Based on the passage", ""),
    ("Based", ""),
    ("Because Berlin is bigger: D", "D"),
    ("A patient with these symptoms needs rest.", ""),   # the article "A", not option A
    ("A. London", "A"),
    ("I think D is right", "D"),
    ("<think>A looks wrong, maybe B</think>The answer is C", "C"),
    ("答案：B", "B"),
    ("答案是ACD。", "ACD"),
    ("正确答案为 A、C、D", "ACD"),
    ("选B。", "B"),
    ("The answers are A and C", "AC"),
    ("", ""),
])
def test_extract_choice(text, expected):
    assert extract_choice(text) == expected


def test_letters_outside_the_options_are_not_choices():
    assert extract_choice("E", {"A": "x", "B": "y"}) == ""
    assert extract_choice("Definitely B", {"A": "x", "B": "y"}) == "B"


def test_option_text_is_the_last_resort():
    assert extract_choice("It is Paris.", OPTIONS) == "B"
    assert extract_choice("Paris or Rome", OPTIONS) == ""  # two options quoted: no choice


def test_choice_scores():
    assert choice_scores("Based on the text, B", ["B"], True) == {"accuracy": 1.0, "strict": 1.0}
    assert choice_scores("B", ["B"], False) == {"accuracy": 1.0, "strict": 0.0}
    assert choice_scores("Based on the text", ["B"], True) == {"accuracy": 0.0, "strict": 0.0}
    assert choice_scores("C, A, D", ["ACD"], True)["accuracy"] == 1.0
    assert choice_scores("A and C", ["ACD"], True)["accuracy"] == 0.0  # a multiple-answer question needs all
