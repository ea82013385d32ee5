"""DROP EM/F1 against the expected values of the official evaluator's own test suite
(allennlp ``tests/tools/drop_eval_test.py``)."""

import pytest

from parallel_decoding.metrics.drop import drop_em_f1, drop_scores, normalize_drop_answer


def test_number_normalisation():
    assert normalize_drop_answer("12.0") == normalize_drop_answer("12.0  ") == normalize_drop_answer("12.000")
    assert normalize_drop_answer("12.0") == normalize_drop_answer("12") == normalize_drop_answer("  1.2e1  ")
    assert normalize_drop_answer("12.0 persons") == "12.0 persons"
    assert normalize_drop_answer("S.K. Singh") == "sk singh"


@pytest.mark.parametrize("predicted,gold,expected", [
    (["78"], ["78.0"], (1.0, 1.0)),
    (["td"], ["td", "td"], (0.0, 0.5)),
    ("td", ["td", "td"], (0.0, 0.5)),
    (["td", "td"], ["td"], (0.0, 0.5)),
    (["the", "fat", "cat", "the fat", "fat cat", "the fat cat"], ["cat"], (0.0, 0.17)),
    (["cat"], ["the", "fat", "cat", "the fat", "fat cat", "the fat cat"], (0.0, 0.17)),
    (["the", "fat", "cat", "the fat", "fat cat", "the fat cat"], ["cat", "cat dog"], (0.0, 0.25)),
    (["td"], ["the td"], (1.0, 1.0)),
    (["the a NOT an ARTICLE the an a"], ["NOT ARTICLE"], (1.0, 1.0)),
    (["John Elton"], ["Elton John"], (0.0, 1.0)),
    (["50 yard"], ["yard 50"], (0.0, 1.0)),
    (["Per.i.o.d...."], [".P....e.r,,i;;;o...d,,"], (1.0, 1.0)),
    (["Spa     c  e   s     "], ["    Spa c     e s"], (1.0, 1.0)),
    (["78-yard"], ["78 yard"], (1.0, 1.0)),
    (["78"], ["78-yard"], (0.0, 0.67)),
    (["78-yard"], ["78"], (0.0, 0.67)),
    (["This was a triumph"], ["tHIS Was A TRIUMPH"], (1.0, 1.0)),
    (["Green bay", "packers"], ["Green bay", "packers"], (1.0, 1.0)),
    ([""], ["army"], (0.0, 0.0)),
    (["packers"], ["Green bay packers"], (0.0, 0.5)),
    (["packers"], ["Green bay"], (0.0, 0.0)),
    (["yard"], ["36 yard td"], (0.0, 0.0)),
    (["23 yards"], ["43 yards"], (0.0, 0.0)),
    (["56 yards"], ["56 yd"], (0.0, 0.5)),
    (["26"], ["26 yard td"], (0.0, 0.5)),
    (["78-yard", "56", "28", "40", "44", "touchdown"], ["78-yard", "56 yard", "1 yard touchdown"], (0.0, 0.28)),
    (["23", "23 yard"], ["23-yard", "56 yards"], (0.0, 0.5)),
    (["John Karman", "Joe Hardy"], ["Joe Karman", "John Hardy"], (0.0, 0.5)),
    (["ottoman", "Kantakouzenous"], ["ottoman", "army of Kantakouzenous"], (0.0, 0.75)),
    (["a"], ["a", "b"], (0.0, 0.5)),
    (["b"], ["b", "a"], (0.0, 0.5)),
])
def test_official_expected_values(predicted, gold, expected):
    assert drop_em_f1(predicted, gold) == expected


def test_max_over_gold_alternatives_like_evaluate_json():
    # The official evaluate_json cases: the best of the original and validated answers.
    assert drop_scores("1", ["1", "0"]) == {"em": 1.0, "f1": 1.0}
    assert drop_scores("17 August", ["17 August", "August", "17"]) == {"em": 1.0, "f1": 1.0}
    assert drop_scores("span1", ["span1 | span2", "span2"]) == {"em": 0.0, "f1": 0.5}
    assert drop_scores("answer", ["answer1", "answer2"]) == {"em": 0.0, "f1": 0.0}
