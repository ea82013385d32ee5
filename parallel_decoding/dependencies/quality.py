"""How good a generated DAG is against the dataset's gold one (FanOutQA ``depends_on``, synthetic chains).

Edges are compared as directed pairs ``(prerequisite, dependent)``: an edge reversed is both a false positive
and a false negative, and an implied (transitive) edge counts as a false positive — the schedule it makes is
different. Counts are stored per group and summed over groups by the recorder (micro-averaging).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from parallel_decoding.data.schema import QuestionGroup

ANNOTATED_KEY = "dependencies_annotated"


@dataclass(frozen=True)
class EdgeCounts:
    tp: int
    fp: int
    fn: int


def compare_edges(predicted: Iterable[tuple[str, str]], gold: Iterable[tuple[str, str]]) -> EdgeCounts:
    predicted, gold = set(predicted), set(gold)
    return EdgeCounts(tp=len(predicted & gold), fp=len(predicted - gold), fn=len(gold - predicted))


def precision_recall_f1(tp: float, fp: float, fn: float) -> dict[str, float | None]:
    """Micro precision/recall/F1; a ratio with a zero denominator is None (undefined), never a made-up 0 or 1."""
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def has_gold_dag(group: QuestionGroup) -> bool:
    """Whether the group's gold DAG is annotated. Loaders may say so in ``metadata['dependencies_annotated']``
    (then an empty DAG is a real "no dependencies"); otherwise a group with gold edges counts as annotated and
    one without (SQuAD) as unannotated, so its predicted edges are not scored as false positives."""
    return bool(group.metadata.get(ANNOTATED_KEY, bool(group.dependencies)))
