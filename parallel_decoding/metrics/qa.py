"""Answer-level QA metrics.

EM and F1 follow the official SQuAD v1.1 evaluation script exactly, so numbers are comparable with
published results; ``lenient`` and ``strict`` are the two extra views the experiments report: lenient
forgives verbose-but-correct answers, strict additionally punishes answers given outside the required
output format.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """SQuAD v1.1 normalisation: lowercase, drop punctuation and articles, squeeze whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _as_list(golds: str | Iterable[str]) -> list[str]:
    """Accept a single gold string as well as a collection, so callers cannot silently iterate characters."""
    return [golds] if isinstance(golds, str) else list(golds)


def _f1_single(prediction: str, gold: str) -> float:
    """Token multiset F1 with the v1.1 rule that no common token scores 0 (even for two empty strings)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = 1.0 * num_same / len(pred_tokens)
    recall = 1.0 * num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def _em_single(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def exact_match(prediction: str, golds: str | Sequence[str]) -> float:
    """1.0 if the prediction equals any gold after normalisation (max over golds, as in SQuAD)."""
    return max((_em_single(prediction, g) for g in _as_list(golds)), default=0.0)


def f1(prediction: str, golds: str | Sequence[str]) -> float:
    """Best token-overlap F1 against any gold answer."""
    return max((_f1_single(prediction, g) for g in _as_list(golds)), default=0.0)


def lenient(prediction: str, golds: str | Sequence[str]) -> float:
    """1.0 if prediction and some gold contain one another after normalisation.

    An empty prediction scores 0: the empty string is a substring of everything, which made the
    reference implementation count non-answers as correct. Golds that normalise to nothing are skipped
    for the same reason.
    """
    pred = normalize_answer(prediction)
    if not pred:
        return 0.0
    for gold in _as_list(golds):
        g = normalize_answer(gold)
        if g and (g in pred or pred in g):
            return 1.0
    return 0.0


def strict(prediction: str, golds: str | Sequence[str], format_valid: bool) -> float:
    """Exact match, but only when the answer came in the required format; otherwise 0."""
    return exact_match(prediction, golds) if format_valid else 0.0


@dataclass(frozen=True)
class QAScores:
    """All four per-question scores, each in [0, 1]."""

    em: float
    f1: float
    lenient: float
    strict: float


def score_prediction(prediction: str, golds: str | Sequence[str], format_valid: bool) -> QAScores:
    """Score one answer on every metric at once so callers cannot mix up metric arguments."""
    em = exact_match(prediction, golds)
    return QAScores(
        em=em,
        f1=f1(prediction, golds),
        lenient=lenient(prediction, golds),
        strict=em if format_valid else 0.0,
    )


def aggregate_scores(scores: Sequence[QAScores]) -> dict[str, float]:
    """Mean of each metric (fractions, not percentages); an empty run reports zeros rather than failing."""
    keys = ("em", "f1", "lenient", "strict")
    if not scores:
        return {k: 0.0 for k in keys}
    n = len(scores)
    return {k: sum(getattr(s, k) for s in scores) / n for k in keys}
