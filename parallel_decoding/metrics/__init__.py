"""Metrics for question answering outputs: short answers (qa), multiple choice, DROP, long answers
(generation), chosen per dataset by its metric set; efficiency accounting. The LLM judge, which calls a backend,
is ``evaluation/judge.py``."""

from parallel_decoding.metrics.drop import drop_em_f1, drop_scores, normalize_drop_answer
from parallel_decoding.metrics.generation import bleu4, generation_scores, rouge
from parallel_decoding.metrics.metric_sets import (
    METRIC_NAMES,
    check_metric_set,
    mean_scores,
    primary_metric_name,
    score_answer,
    score_question,
    score_row,
)
from parallel_decoding.metrics.multiple_choice import choice_scores, extract_choice
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
    "METRIC_NAMES",
    "QAScores",
    "aggregate_scores",
    "bleu4",
    "check_metric_set",
    "choice_scores",
    "drop_em_f1",
    "drop_scores",
    "exact_match",
    "extract_choice",
    "f1",
    "generation_scores",
    "lenient",
    "mean_scores",
    "normalize_answer",
    "normalize_drop_answer",
    "primary_metric_name",
    "rouge",
    "score_answer",
    "score_prediction",
    "score_question",
    "score_row",
    "strict",
]
