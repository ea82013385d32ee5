"""Which metrics a dataset is scored with: its config names a *metric set* (``dataset.metrics``).

=================  ===========================================  ===========================================
metric set         per-question scores                          used by
=================  ===========================================  ===========================================
``qa``             em, f1, lenient, strict (SQuAD v1.1)         squad, hotpot, quac, triviaqa, fanoutqa, ...
``multiple_choice`` accuracy, strict (letters, see extractor)   quality, cmb_exam
``drop``           em, f1 (official DROP evaluator)             drop
``generation``     bleu4, rouge1, rouge2, rougeL                cmb_clin (character level for ``zh``)
``unscored``       none (no gold answer: costs only)            the inseq runner's ``planning`` task
=================  ===========================================  ===========================================

Every score is a function of what a prediction row keeps (prediction, gold, format flag, language,
options), so ``results.json`` is always recomputed from the rows. Judge scores (``evaluation/judge.py``) come
on top of any set when the judge is on. Everything that scores an answer goes through ``score_question`` /
``score_answer``: ``evaluate``'s recorder, validation and test during training (``methods/base.py``) and the
inseq runner, so a checkpoint is selected by the numbers ``evaluate`` reports for it.
"""

from __future__ import annotations

from typing import Any, Sequence

from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import Question
from parallel_decoding.metrics.drop import drop_scores
from parallel_decoding.metrics.generation import GENERATION_METRICS, generation_scores
from parallel_decoding.metrics.multiple_choice import choice_scores
from parallel_decoding.metrics.qa import score_prediction

METRIC_NAMES = {
    "qa": ("em", "f1", "lenient", "strict"),
    "multiple_choice": ("accuracy", "strict"),
    "drop": ("em", "f1"),
    "generation": GENERATION_METRICS,
    "unscored": (),
}
LANGUAGES = ("en", "zh")
PRIMARY_METRICS = ("f1", "accuracy", "rougeL")  # what a sweep optimises: the first of these a run reports


def primary_metric(metrics: dict[str, float]) -> float | None:
    return next((metrics[k] for k in PRIMARY_METRICS if k in metrics), None)


def primary_metric_name(metric_set: str) -> str | None:
    """The metric of ``metric_set`` that sweeps optimise and training selects checkpoints by (None: unscored)."""
    return next((k for k in PRIMARY_METRICS if k in METRIC_NAMES[metric_set]), None)


def check_metric_set(metric_set: str, language: str = "en") -> None:
    if metric_set not in METRIC_NAMES:
        raise ConfigError(f"unknown metric set {metric_set!r}; dataset.metrics must be one of {sorted(METRIC_NAMES)}")
    if language not in LANGUAGES:
        raise ConfigError(f"unknown language {language!r}; dataset.language must be one of {LANGUAGES}")


def score_answer(metric_set: str, prediction: str, golds: Sequence[str], format_valid: bool, *,
                 language: str = "en", options: dict[str, str] | None = None) -> dict[str, float]:
    """Every metric of ``metric_set`` for one answer, as ``{name: score in [0, 1]}``."""
    if metric_set == "qa":
        s = score_prediction(prediction, list(golds), format_valid)
        return {"em": s.em, "f1": s.f1, "lenient": s.lenient, "strict": s.strict}
    if metric_set == "multiple_choice":
        return choice_scores(prediction, list(golds), format_valid, options)
    if metric_set == "drop":
        return drop_scores(prediction, list(golds))
    if metric_set == "generation":
        return generation_scores(prediction, list(golds), language)
    if metric_set == "unscored":
        return {}
    raise ConfigError(f"unknown metric set {metric_set!r}")


def question_options(metric_set: str, question: Question) -> dict[str, str] | None:
    """The answer options a multiple-choice score needs (kept in the prediction row); None for other sets."""
    return question.metadata.get("options") if metric_set == "multiple_choice" else None


def score_question(metric_set: str, question: Question, prediction: str, format_valid: bool,
                   language: str = "en") -> dict[str, float]:
    """Every metric of ``metric_set`` for one answer to ``question`` (its golds and, for multiple choice, its
    options)."""
    return score_answer(metric_set, prediction, list(question.answers), format_valid, language=language,
                        options=question_options(metric_set, question))


def score_row(row: dict[str, Any]) -> dict[str, float]:
    """Scores of a ``predictions.jsonl`` row (rows written before metric sets existed are ``qa``)."""
    return score_answer(row.get("metric_set", "qa"), row["prediction"], row["gold"], row["format_valid"],
                        language=row.get("language", "en"), options=row.get("options"))


def mean_scores(metric_set: str, scores: Sequence[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric (an empty run reports zeros rather than failing)."""
    names = METRIC_NAMES[metric_set]
    return {k: (sum(s[k] for s in scores) / len(scores) if scores else 0.0) for k in names}
