"""QA metrics: parity with the official SQuAD v1.1 script and torchmetrics, plus lenient/strict rules."""

from __future__ import annotations

import random
import re
import string
from collections import Counter

import pytest
import torch

from parallel_decoding.metrics import (
    QAScores,
    aggregate_scores,
    exact_match,
    f1,
    lenient,
    normalize_answer,
    score_prediction,
    strict,
)

# --- Reference: the official SQuAD v1.1 evaluation script, re-implemented independently. ----------


def ref_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def ref_f1_score(prediction, ground_truth):
    prediction_tokens = ref_normalize_answer(prediction).split()
    ground_truth_tokens = ref_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def ref_exact_match_score(prediction, ground_truth):
    return ref_normalize_answer(prediction) == ref_normalize_answer(ground_truth)


def ref_metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    return max(metric_fn(prediction, gt) for gt in ground_truths)


def ref_evaluate(dataset, predictions):
    f1_total = exact_match_total = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                ground_truths = [x["text"] for x in qa["answers"]]
                prediction = predictions[qa["id"]]
                exact_match_total += ref_metric_max_over_ground_truths(ref_exact_match_score, prediction, ground_truths)
                f1_total += ref_metric_max_over_ground_truths(ref_f1_score, prediction, ground_truths)
    return {"exact_match": 100.0 * exact_match_total / total, "f1": 100.0 * f1_total / total}


# --- Deterministic prediction set. ------------------------------------------------------------------

GOLD_POOL = [
    "Denver Broncos",
    "the Eiffel Tower",
    "1976",
    "Santa Clara, California",
    "an apple a day",
    "U.S. Army",
    "$2.5 million",
    "Martin Luther King Jr.",
    "the the the cat",
    "New York New York",
    "photosynthesis",
    "A Tale of Two Cities",
    "Beyoncé",
    "O'Neill",
    "rock-and-roll",
    "10 to 15 percent",
    "the University of Notre Dame",
    "Mount Everest",
    "red, white and blue",
    "Apollo 11",
    "half",
    "Paris",
    "The Theory of Everything",
    "an ancient Egyptian pharaoh",
    "2,000 km",
]
FILLER = ["the", "a", "an", "of", "in", "city", "famous", "about", "it", "was", "very", "Paris", "1976", "blue"]
UNRELATED = ["banana", "I don't know", "No answer found.", "42", "quantum chromodynamics", "  ", "???"]


def _perturb(rng: random.Random, gold: str) -> str:
    """One random, realistic corruption of a gold answer."""
    words = gold.split()
    kind = rng.randrange(12)
    if kind == 0:
        return gold
    if kind == 1 and len(words) > 1:
        del words[rng.randrange(len(words))]
        return " ".join(words)
    if kind == 2:
        words.insert(rng.randrange(len(words) + 1), rng.choice(FILLER))
        return " ".join(words)
    if kind == 3:
        return rng.choice(["The ", "a ", "An ", "the the "]) + gold
    if kind == 4:
        return gold + rng.choice([".", "!", "?", ",", ";", " ...", '"']) + rng.choice(["", " "])
    if kind == 5:
        return gold.upper() if rng.random() < 0.5 else gold.swapcase()
    if kind == 6:
        return rng.choice(UNRELATED)
    if kind == 7:
        return ""
    if kind == 8:
        return "  " + "   ".join(words) + "\n"
    if kind == 9:
        return " ".join(words + words[: rng.randrange(1, len(words) + 1)])
    if kind == 10:
        return "".join(ch for ch in gold if ch not in string.punctuation)
    return f"It is {gold} according to the passage"


def build_cases(n: int = 300, seed: int = 1234) -> list[tuple[str, list[str], str]]:
    """(id, golds, prediction) triples; about a third have several golds, some with duplicates."""
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        golds = [rng.choice(GOLD_POOL)]
        if rng.random() < 0.35:
            golds += [_perturb(rng, golds[0]) or golds[0], rng.choice(GOLD_POOL)]
        golds = [g for g in golds if ref_normalize_answer(g)]  # torchmetrics differs only on empty golds
        source = rng.choice(golds) if rng.random() < 0.85 else rng.choice(GOLD_POOL)
        cases.append((f"q{i}", golds, _perturb(rng, source)))
    return cases


CASES = build_cases()


def test_case_set_is_varied() -> None:
    assert len(CASES) >= 200
    preds = [p for _, _, p in CASES]
    assert any(p == "" for p in preds)
    assert any(len(g) > 1 for _, g, _ in CASES)
    ems = [exact_match(p, g) for _, g, p in CASES]
    f1s = [f1(p, g) for _, g, p in CASES]
    assert 0 < sum(ems) < len(ems)
    assert any(0 < x < 1 for x in f1s)


def test_normalize_answer_matches_reference() -> None:
    for _, golds, pred in CASES:
        for s in [pred, *golds]:
            assert normalize_answer(s) == ref_normalize_answer(s)
    assert normalize_answer("  The  Quick, brown-fox! an  ") == "quick brownfox"
    assert normalize_answer("theatre then a") == "theatre then"


def test_per_item_parity_with_official_script() -> None:
    for _, golds, pred in CASES:
        assert exact_match(pred, golds) == float(ref_metric_max_over_ground_truths(ref_exact_match_score, pred, golds))
        assert f1(pred, golds) == float(ref_metric_max_over_ground_truths(ref_f1_score, pred, golds))


def _aggregate(cases):
    return aggregate_scores([score_prediction(p, g, format_valid=True) for _, g, p in cases])


def test_aggregate_parity_with_official_evaluate() -> None:
    dataset = [{"paragraphs": [{"qas": [{"id": qid, "answers": [{"text": g} for g in golds]} for qid, golds, _ in CASES]}]}]
    ref = ref_evaluate(dataset, {qid: pred for qid, _, pred in CASES})
    ours = _aggregate(CASES)
    assert 100 * ours["em"] == pytest.approx(ref["exact_match"], abs=1e-9)
    assert 100 * ours["f1"] == pytest.approx(ref["f1"], abs=1e-9)


def test_aggregate_parity_with_torchmetrics() -> None:
    from torchmetrics.text import SQuAD

    preds = [{"prediction_text": pred, "id": qid} for qid, _, pred in CASES]
    targets = [{"answers": {"answer_start": [0] * len(golds), "text": golds}, "id": qid} for qid, golds, _ in CASES]
    # torchmetrics keeps float32 states and per-item scores in the default dtype; float32 rounding
    # alone is ~1e-5 on a percentage, so compare in float64 to make the 1e-6 tolerance meaningful.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        metric = SQuAD()
        metric.set_dtype(torch.float64)
        result = metric(preds, targets)
    finally:
        torch.set_default_dtype(previous)
    ours = _aggregate(CASES)
    assert 100 * ours["em"] == pytest.approx(float(result["exact_match"]), abs=1e-6)
    assert 100 * ours["f1"] == pytest.approx(float(result["f1"]), abs=1e-6)


def test_f1_edge_cases() -> None:
    assert f1("", ["Paris"]) == 0.0
    assert f1("the", ["a"]) == 0.0  # v1.1: nothing in common scores 0, even when both normalise to ""
    assert f1("cat cat", ["cat"]) == pytest.approx(2 * 0.5 * 1 / 1.5)  # multiset, not set, overlap
    assert f1("Paris France", ["Rome", "France"]) == pytest.approx(2 / 3)
    assert f1("x", []) == 0.0
    assert exact_match("x", []) == 0.0
    assert exact_match("The Eiffel tower!", "eiffel Tower") == 1.0  # a lone gold string is one answer


def test_lenient() -> None:
    assert lenient("It is the Eiffel Tower in Paris", ["Eiffel Tower"]) == 1.0
    assert lenient("Tower", ["the Eiffel Tower"]) == 1.0
    assert lenient("Rome", ["Paris", "rome!"]) == 1.0
    assert lenient("London", ["Paris"]) == 0.0
    assert lenient("", ["Paris"]) == 0.0
    assert lenient("  the . ", ["Paris"]) == 0.0  # normalises to empty
    assert lenient("Paris", ["the"]) == 0.0  # an empty gold is contained in everything: skip it


def test_strict() -> None:
    assert strict("Paris", ["paris"], format_valid=True) == 1.0
    assert strict("Paris", ["paris"], format_valid=False) == 0.0
    assert strict("Paris is the answer", ["paris"], format_valid=True) == 0.0
    assert strict("", ["paris"], format_valid=True) == 0.0


def test_score_prediction_and_aggregate() -> None:
    s = score_prediction("the Paris", ["Paris"], format_valid=False)
    assert s == QAScores(em=1.0, f1=1.0, lenient=1.0, strict=0.0)
    t = score_prediction("Paris, France", ["Paris"], format_valid=True)
    assert (t.em, t.lenient, t.strict) == (0.0, 1.0, 0.0)
    assert t.f1 == pytest.approx(2 / 3)
    agg = aggregate_scores([s, t])
    assert agg == pytest.approx({"em": 0.5, "f1": (1 + 2 / 3) / 2, "lenient": 1.0, "strict": 0.0})
    assert aggregate_scores([]) == {"em": 0.0, "f1": 0.0, "lenient": 0.0, "strict": 0.0}
