"""Edge precision/recall against a gold DAG: directed pairs, micro-averaged, undefined stays undefined."""

from __future__ import annotations

import dataclasses

import pytest

from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.dependencies.quality import EdgeCounts, compare_edges, has_gold_dag, precision_recall_f1
from parallel_decoding.evaluation.recorder import summarize


def test_reversed_and_extra_edges_are_errors():
    gold = [("a", "b"), ("b", "c")]
    assert compare_edges([("a", "b"), ("c", "b"), ("a", "c")], gold) == EdgeCounts(tp=1, fp=2, fn=1)


def test_precision_recall_f1_and_undefined_cases():
    assert precision_recall_f1(1, 2, 1) == pytest.approx({"precision": 1 / 3, "recall": 0.5, "f1": 0.4})
    assert precision_recall_f1(0, 0, 3) == {"precision": None, "recall": 0.0, "f1": None}
    assert precision_recall_f1(0, 2, 0) == {"precision": 0.0, "recall": None, "f1": None}
    assert precision_recall_f1(0, 2, 2)["f1"] == 0.0


def test_only_annotated_groups_are_scored():
    q = (Question("a", "A?", ("x",), None), Question("b", "B?", ("y",), None))
    assert has_gold_dag(QuestionGroup("g", q, dependencies=(("a", "b"),)))
    assert not has_gold_dag(QuestionGroup("g", q))  # SQuAD: no annotation, not "no dependencies"
    annotated = QuestionGroup("g", q, metadata={"dependencies_annotated": True})
    assert has_gold_dag(annotated) and not has_gold_dag(dataclasses.replace(annotated, metadata={}))


def test_summary_micro_averages_edge_counts_over_groups():
    def group_row(gid, tp, fp, fn):
        return {"strategy": "s", "group_id": gid, "n_questions": 0, "efficiency": dict.fromkeys(
            ["latency_s", "prompt_tokens", "dedup_prompt_tokens", "computed_prompt_tokens", "generated_tokens",
             "forward_passes", "generate_calls"], 0), "extra": {"layers": 2, "edge_tp": tp, "edge_fp": fp, "edge_fn": fn,
                                              "edge_groups": 1, "dag": {"edges": []}}}
    extra = summarize([], [group_row("1", 3, 1, 0), group_row("2", 0, 3, 2)])["s"]["extra"]
    assert extra["edge_tp"] == 3 and extra["layers"] == 4 and "dag" not in extra
    assert extra["edge_precision"] == pytest.approx(3 / 7) and extra["edge_recall"] == pytest.approx(3 / 5)
    assert extra["edge_f1"] == pytest.approx(2 * (3 / 7) * (3 / 5) / (3 / 7 + 3 / 5), abs=1e-6)


def test_dependency_table_lists_only_strategies_with_layers_and_dashes_undefined_values():
    from rich.console import Console

    from parallel_decoding.evaluation.table import dependency_table

    efficiency = {"latency_s": 2.0}
    strategies = {
        "batch": {"n_groups": 2, "efficiency": efficiency},
        "collab_x": {"n_groups": 2, "efficiency": efficiency,
                     "extra": {"layers": 5, "ideal_latency_s": 1.25, "dag_latency_s": 0.1, "selected_edges": 3}},
    }
    table = dependency_table(strategies)
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "collab_x" in text and "batch" not in text and "2.50" in text and "1.25" in text and "–" in text
    assert dependency_table({"batch": strategies["batch"]}) is None
