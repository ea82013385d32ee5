"""``results.json``'s intervals, paired comparisons and parallelism, recomputed from rows like the means are."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from rich.console import Console

from parallel_decoding.evaluation.recorder import summarize
from parallel_decoding.evaluation.table import print_results

ANSWERS = {  # (group, question) -> (gold, strategy a's answer, strategy b's answer)
    (f"g{g}", f"q{q}"): ("Paris", "Paris" if (g + q) % 3 else "Rome", "Paris" if (g * q) % 4 else "Lyon")
    for g in range(6) for q in range(3)
}


def _rows(strategy, skip_group=None, judge=False):
    rows = []
    for (group, question), (gold, a, b) in ANSWERS.items():
        if group == skip_group:
            continue
        row = {"strategy": strategy, "group_id": group, "question_id": question, "prediction": a if strategy == "a"
               else b, "gold": [gold], "format_valid": True}
        if judge:
            row["judge"] = None if question == "q0" else {"fluency": 5, "relevance": 4 if group < "g3" else 2,
                                                          "completeness": 3, "proficiency": 2}
        rows.append(row)
    return rows


def _groups(strategy, skip_group=None):
    return [{"strategy": strategy, "group_id": f"g{g}", "n_questions": 3,
             "efficiency": {"latency_s": 1.0, "prompt_tokens": 10, "dedup_prompt_tokens": 5, "computed_prompt_tokens": 10,
                            "generated_tokens": 6, "forward_passes": 6 if strategy == "a" else 2,
                            "generate_calls": 1}}
            for g in range(6) if f"g{g}" != skip_group]


@pytest.fixture(scope="module")
def summary():
    return summarize(_rows("a") + _rows("b", skip_group="g5"), _groups("a") + _groups("b", skip_group="g5"))


def test_intervals_are_around_the_reported_means(summary):
    for entry in summary.values():
        assert set(entry["intervals"]) == set(entry["metrics"])
        for key, interval in entry["intervals"].items():
            assert interval["mean"] == entry["metrics"][key]
            assert 0.0 <= interval["ci_low"] <= interval["mean"] <= interval["ci_high"] <= 1.0


def test_paired_section_compares_the_common_questions_with_the_first_strategy(summary):
    assert "paired" not in summary["a"]  # a is the reference
    paired = summary["b"]["paired"]
    assert (paired["reference"], paired["n_groups"], paired["n_questions"]) == ("a", 5, 15)
    # independent reference: the mean difference and the exact sign-flip p-value enumerated by hand
    em = {key: (float(b == gold), float(a == gold)) for key, (gold, a, b) in ANSWERS.items() if key[0] != "g5"}
    diffs = np.array([b - a for b, a in em.values()])
    assert paired["metrics"]["em"]["diff"] == pytest.approx(diffs.mean(), abs=1e-6)
    per_group = np.array([sum(b - a for (g, _), (b, a) in em.items() if g == f"g{i}") for i in range(5)])
    flips = np.array(list(itertools.product([1, -1], repeat=5)))
    expected_p = np.mean(np.abs(flips @ per_group) >= abs(per_group.sum()) - 1e-9)
    assert paired["metrics"]["em"]["p_value"] == pytest.approx(expected_p, abs=1e-6)
    low, high = paired["metrics"]["em"]["ci_low"], paired["metrics"]["em"]["ci_high"]
    assert low <= paired["metrics"]["em"]["diff"] <= high


def test_reference_can_be_named():
    summary = summarize(_rows("a") + _rows("b"), _groups("a") + _groups("b"), reference="b")
    assert "paired" not in summary["b"] and summary["a"]["paired"]["reference"] == "b"


def test_parallelism_section(summary):
    assert summary["a"]["parallelism"]["tokens_per_forward"]["mean"] == 1.0
    assert summary["b"]["parallelism"]["tokens_per_forward"]["mean"] == 3.0
    assert summary["b"]["parallelism"]["tokens_per_forward_per_branch"]["mean"] == 1.0
    assert summary["a"]["parallelism"]["nfe"] == 36 and summary["a"]["parallelism"]["nfe_per_question"] == 2.0


def test_judge_intervals_use_the_judged_answers_only():
    summary = summarize(_rows("a", judge=True), _groups("a"))
    interval = summary["a"]["intervals"]["judge_relevance"]
    assert interval["mean"] == summary["a"]["metrics"]["judge_relevance"] == 3.0
    assert 1.0 <= interval["ci_low"] < 3.0 < interval["ci_high"] <= 5.0
    assert summary["a"]["intervals"]["judge_fluency"] == {"mean": 5.0, "ci_low": 5.0, "ci_high": 5.0}


def test_sampler_tokens_per_forward_from_the_strategy_counts():
    groups = _groups("a")
    for row in groups:
        row["extra"] = {"decoded_tokens": 12, "row_forward_passes": 8}
    assert summarize(_rows("a"), groups)["a"]["parallelism"]["sampler_tokens_per_forward"] == 1.5


def test_printed_tables_show_intervals_paired_and_parallelism(summary):
    console = Console(record=True, width=250)
    print_results(summary, console)
    text = console.export_text()
    em = summary["b"]["intervals"]["em"]
    assert f"{em['mean']:.3f} [{em['ci_low']:.2f}, {em['ci_high']:.2f}]" in text
    assert "paired vs a" in text and f"p={summary['b']['paired']['metrics']['em']['p_value']:.3g}" in text
    assert "tokens/forward" in text and "3.00" in text


def test_printed_parallelism_with_an_unbounded_interval(summary):
    entry = {**summary["a"], "parallelism": {"nfe": 36, "nfe_per_question": 2.0, "tokens_per_forward": {
        "mean": 1.71, "ci_low": 0.0, "ci_high": None}, "tokens_per_forward_per_branch": None}}
    console = Console(record=True, width=250)
    print_results({"a": entry}, console)  # method="studentized" with few groups can leave the top open
    assert "1.71 [0.00, ∞]" in console.export_text()
