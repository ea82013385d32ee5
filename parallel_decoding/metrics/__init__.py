"""Metrics for question answering outputs: short answers (qa), multiple choice, DROP, long answers
(generation), chosen per dataset by its metric set; the LLM judge on top; efficiency accounting."""

from parallel_decoding.metrics.drop import drop_em_f1, drop_scores, normalize_drop_answer
from parallel_decoding.metrics.generation import bleu4, generation_scores, rouge
from parallel_decoding.metrics.metric_sets import METRIC_NAMES, check_metric_set, mean_scores, score_answer, score_row
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

_JUDGE_NAMES = ("JUDGE_DIMENSIONS", "LLMJudge", "build_judge", "judge_means", "parse_judgement")


def __getattr__(name: str):
    # The judge needs the HTTP client in backends/, which itself imports metrics: load it on first use only.
    if name in _JUDGE_NAMES:
        from parallel_decoding.metrics import judge

        return getattr(judge, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "rouge",
    "score_answer",
    "score_prediction",
    "score_row",
    "strict",
    *_JUDGE_NAMES,
]
