"""Metric sets: a dataset's metrics chosen by name, and ``summarize`` recomputing them (and judge means) from rows."""

import pytest

from parallel_decoding.config import ConfigError
from parallel_decoding.evaluation.recorder import summarize
from parallel_decoding.data.schema import Question
from parallel_decoding.metrics.metric_sets import (
    METRIC_NAMES,
    check_metric_set,
    primary_metric,
    primary_metric_name,
    score_answer,
    score_question,
)


def test_each_set_scores_its_own_metrics():
    assert score_answer("qa", "Paris", ["Paris"], True) == {"em": 1.0, "f1": 1.0, "lenient": 1.0, "strict": 1.0}
    assert score_answer("multiple_choice", "Based on it, B", ["B"], True) == {"accuracy": 1.0, "strict": 1.0}
    assert score_answer("drop", "14.0", ["14"], True) == {"em": 1.0, "f1": 1.0}
    assert set(score_answer("generation", "右侧斜疝", ["右侧腹股沟斜疝"], True, language="zh")) == {
        "bleu4", "rouge1", "rouge2", "rougeL"}
    with pytest.raises(ConfigError):
        check_metric_set("bleu")
    with pytest.raises(ConfigError):
        check_metric_set("qa", "fr")
    assert primary_metric({"accuracy": 0.5, "strict": 0.25}) == 0.5


def _row(strategy, prediction, gold, **extra):
    return {"strategy": strategy, "group_id": "g", "question_id": prediction, "prediction": prediction, "gold": gold,
            "format_valid": True, **extra}


def _group(strategy):
    return {"strategy": strategy, "group_id": "g", "efficiency": {k: 1 for k in (
        "latency_s", "prompt_tokens", "dedup_prompt_tokens", "computed_prompt_tokens", "generated_tokens",
        "forward_passes", "generate_calls")}}


def test_summarize_uses_the_rows_metric_set_and_judge_scores():
    good = {"fluency": 5, "relevance": 4, "completeness": 3, "proficiency": 2}
    rows = [
        _row("mc", "B", ["B"], metric_set="multiple_choice", options={"A": "x", "B": "y"}),
        _row("mc", "Based on it", ["B"], metric_set="multiple_choice"),
        _row("gen", "右侧腹股沟斜疝", ["右侧腹股沟斜疝"], metric_set="generation", language="zh", judge=good),
        _row("gen", "无关", ["右侧腹股沟斜疝"], metric_set="generation", language="zh", judge=None),
        _row("old", "Paris", ["Paris"]),  # rows from before metric sets are qa
    ]
    summary = summarize(rows, [_group("mc"), _group("gen"), _group("old")])
    assert summary["mc"]["metrics"] == {"accuracy": 0.5, "strict": 0.5}
    gen = summary["gen"]
    assert gen["metrics"]["rouge1"] == pytest.approx(0.5) and gen["metrics"]["judge_fluency"] == 5.0
    assert gen["metrics"]["judge_mean"] == 3.5 and gen["judge_failures"] == 1
    assert summary["old"]["metrics"] == {"em": 1.0, "f1": 1.0, "lenient": 1.0, "strict": 1.0}
    assert "judge_failures" not in summary["mc"]


def test_every_set_names_its_primary_metric_and_unscored_scores_nothing():
    assert {s: primary_metric_name(s) for s in METRIC_NAMES} == {
        "qa": "f1", "multiple_choice": "accuracy", "drop": "f1", "generation": "rougeL", "unscored": None}
    assert score_answer("unscored", "a plan", [], True) == {}
    assert summarize([_row("plan", "a plan", [], metric_set="unscored")], [_group("plan")])["plan"]["metrics"] == {}


def test_a_question_is_scored_with_its_options_under_multiple_choice_only():
    question = Question("q", "Which?", ("B",), context_index=None, metadata={"options": {"A": "Paris", "B": "Rome"}})
    assert score_question("multiple_choice", question, "Rome", True) == {"accuracy": 1.0, "strict": 1.0}
    assert score_question("qa", question, "B", False) == {"em": 1.0, "f1": 1.0, "lenient": 1.0, "strict": 0.0}
