"""DROP's official EM and F1 (Dua et al. 2019, ``drop_eval.py``), re-implemented with the same behaviour.

Answers are *bags of spans*. Each span is normalised token by token (split on spaces and hyphens; lowercase;
punctuation dropped unless the token is a number; numbers rewritten as floats, so "12", "12.000" and "1.2e1"
agree; articles dropped). EM needs the same set of normalised spans; F1 aligns predicted and gold spans one to
one (Hungarian assignment), scoring a pair 0 when the gold span holds numbers none of which the predicted span
has, and averages over the larger bag. The official script rounds F1 to two decimals; so do we, so numbers
compare with published DROP results. The max is taken over gold alternatives for EM and F1 separately.
"""

from __future__ import annotations

import re
import string
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from parallel_decoding.data.drop import DROP_SPAN_SEPARATOR

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _normalize_token(token: str) -> str:
    token = token.lower()
    if not _is_number(token):
        token = "".join(ch for ch in token if ch not in _PUNCTUATION)
    if _is_number(token):
        token = str(float(token))
    return " ".join(_ARTICLES.sub(" ", token).split())


def normalize_drop_answer(text: str) -> str:
    parts = [_normalize_token(token) for token in re.split(" |-", text)]
    return " ".join(part for part in parts if part.strip()).strip()


def _bags(spans: Sequence[str]) -> tuple[list[str], list[set[str]]]:
    normalized = [normalize_drop_answer(span) for span in spans]
    return normalized, [set(n.split()) for n in normalized]


def _bag_f1(predicted: set[str], gold: set[str]) -> float:
    intersection = len(gold & predicted)
    precision = intersection / len(predicted) if predicted else 1.0
    recall = intersection / len(gold) if gold else 1.0
    return 0.0 if precision == 0.0 and recall == 0.0 else 2 * precision * recall / (precision + recall)


def _numbers_match(gold: set[str], predicted: set[str]) -> bool:
    gold_numbers = {w for w in gold if _is_number(w)}
    return not gold_numbers or bool(gold_numbers & {w for w in predicted if _is_number(w)})


def _aligned_f1(predicted: list[set[str]], gold: list[set[str]]) -> float:
    scores = np.zeros((len(gold), len(predicted)))
    for g, gold_bag in enumerate(gold):
        for p, predicted_bag in enumerate(predicted):
            if _numbers_match(gold_bag, predicted_bag):
                scores[g, p] = _bag_f1(predicted_bag, gold_bag)
    rows, columns = linear_sum_assignment(-scores)
    best = np.zeros(max(len(gold), len(predicted)))
    for row, column in zip(rows, columns):
        best[row] = max(best[row], scores[row, column])
    return float(np.mean(best))


def drop_em_f1(predicted: str | Sequence[str], gold: str | Sequence[str]) -> tuple[float, float]:
    """EM and F1 of one predicted answer against one gold answer; each is a span or a list of spans."""
    predicted_spans = [predicted] if isinstance(predicted, str) else list(predicted)
    gold_spans = [gold] if isinstance(gold, str) else list(gold)
    predicted_norm, predicted_bags = _bags(predicted_spans)
    gold_norm, gold_bags = _bags(gold_spans)
    exact = float(set(predicted_norm) == set(gold_norm) and len(predicted_norm) == len(gold_norm))
    return exact, round(_aligned_f1(predicted_bags, gold_bags), 2)


def split_spans(answer: str) -> list[str]:
    return [span for span in answer.split(DROP_SPAN_SEPARATOR.strip())] if DROP_SPAN_SEPARATOR.strip() in answer \
        else [answer]


def drop_scores(prediction: str, golds: str | Sequence[str]) -> dict[str, float]:
    """``{em, f1}``: the best over gold alternatives (multi-span golds written with ``DROP_SPAN_SEPARATOR``)."""
    alternatives = [golds] if isinstance(golds, str) else list(golds)
    predicted = [span.strip() for span in split_spans(prediction)]
    best_em = best_f1 = 0.0
    for gold in alternatives:
        em, f1 = drop_em_f1(predicted, [span.strip() for span in split_spans(gold)])
        best_em, best_f1 = max(best_em, em), max(best_f1, f1)
    return {"em": best_em, "f1": best_f1}
