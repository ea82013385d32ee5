"""Long-answer overlap metrics: sentence BLEU-4 (sacrebleu) and ROUGE-1/2/L F-measure (rouge-score).

For Chinese (``language=zh``) both work on characters, as the CMB papers do: sacrebleu's ``char`` tokenizer,
and for ROUGE a character tokenizer (rouge-score's default tokenizer keeps only ``[a-z0-9]`` and so scores
every Chinese answer 0). Latin words and numbers inside Chinese text stay whole tokens for ROUGE.
Scores are in [0, 1]; against several references each metric takes its best reference (BLEU uses all
references at once, as BLEU is defined).

BLEU is sentence-level with sacrebleu's defaults (exponential smoothing — NIST's geometric sequence, the
same as NLTK's ``method3`` the reference used — and effective order), averaged over questions.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Sequence

from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

GENERATION_METRICS = ("bleu4", "rouge1", "rouge2", "rougeL")
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+", re.UNICODE)


class CharacterTokenizer:
    """rouge-score tokenizer for Chinese: each CJK character a token, Latin words and numbers whole,
    lower-cased; punctuation and spaces dropped."""

    def tokenize(self, text: str) -> list[str]:
        return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


@lru_cache(maxsize=None)
def _bleu(language: str) -> BLEU:
    return BLEU(tokenize="char" if language == "zh" else "13a", effective_order=True)


@lru_cache(maxsize=None)
def _rouge(language: str) -> rouge_scorer.RougeScorer:
    tokenizer = CharacterTokenizer() if language == "zh" else None
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=tokenizer)


def _as_list(references: str | Sequence[str]) -> list[str]:
    return [references] if isinstance(references, str) else list(references)


def bleu4(prediction: str, references: str | Sequence[str], language: str = "en") -> float:
    refs = [r for r in _as_list(references) if r.strip()]
    if not prediction.strip() or not refs:
        return 0.0
    return _bleu(language).sentence_score(prediction, refs).score / 100.0


def rouge(prediction: str, references: str | Sequence[str], language: str = "en") -> dict[str, float]:
    """``{rouge1, rouge2, rougeL}`` F-measures, each the best over the references."""
    scorer = _rouge(language)
    best = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for reference in _as_list(references):
        scores = scorer.score(reference, prediction)  # rouge-score's argument order: (target, prediction)
        for key in best:
            best[key] = max(best[key], scores[key].fmeasure)
    return best


def generation_scores(prediction: str, references: str | Sequence[str], language: str = "en") -> dict[str, float]:
    return {"bleu4": bleu4(prediction, references, language), **rouge(prediction, references, language)}
