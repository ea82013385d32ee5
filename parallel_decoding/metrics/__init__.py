"""Metrics for question answering outputs."""

from parallel_decoding.metrics.qa import (
    QAScores,
    aggregate_scores,
    exact_match,
    f1,
    lenient,
    normalize_answer,
    score_prediction,
    strict,
)

__all__ = [
    "QAScores",
    "aggregate_scores",
    "exact_match",
    "f1",
    "lenient",
    "normalize_answer",
    "score_prediction",
    "strict",
]
