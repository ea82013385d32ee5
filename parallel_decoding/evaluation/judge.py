"""LLM judge for long answers: fluency, relevance, completeness and proficiency, each 1-5, through any
OpenAI-compatible endpoint (``judge.base_url``, ``judge.model``; the key from the env var named by
``judge.api_key_env``).

The judge sees the question (with its context), the reference answer and the model's answer, and must reply
with a JSON object of the four integer scores. A reply that is not such JSON is asked again (up to
``attempts`` requests); a question that still has no valid judgement — or whose requests failed for good —
is recorded as a judge *failure* (``judge: null`` in its prediction row) and left out of the means. Unlike the
reference, which scored unparseable replies as 3s, a failure never becomes a score, and never stops the run.
"""

from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from parallel_decoding.backends.api import ApiError, ChatClient
from parallel_decoding.data.schema import QuestionGroup

log = logging.getLogger(__name__)

JUDGE_DIMENSIONS = ("fluency", "relevance", "completeness", "proficiency")
JUDGE_SYSTEM = "You are a strict expert grader. Reply with one JSON object and nothing else."
JUDGE_PROMPT = """Grade the model's answer to the question against the reference answer.

{context_block}## Question
{question}

## Reference answer
{reference}

## Model's answer
{prediction}

Score each dimension with an integer from 1 (very poor) to 5 (excellent):
- fluency: is the answer well written, clear and easy to read?
- relevance: does it address the question asked, without digressions?
- completeness: does it cover the key points of the reference answer?
- proficiency: is it accurate and expert in the question's domain (for medical questions: medically correct)?

Reply with only this JSON: {{"fluency": <1-5>, "relevance": <1-5>, "completeness": <1-5>, "proficiency": <1-5>}}"""
_FENCE = re.compile(r"```(?:json)?", re.IGNORECASE)


def judge_messages(question: str, reference: str, prediction: str, context: str | None = None) -> list[dict]:
    context_block = f"## Context\n{context}\n\n" if context else ""
    user = JUDGE_PROMPT.format(context_block=context_block, question=question, reference=reference,
                               prediction=prediction or "(no answer)")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_judgement(text: str) -> dict[str, int] | None:
    """The four scores from a reply, or None unless some JSON object in it has all four as integers 1-5."""
    cleaned = _FENCE.sub("", text or "")
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", cleaned):
        try:
            obj, _ = decoder.raw_decode(cleaned, match.start())
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        lowered = {str(k).strip().lower(): v for k, v in obj.items()}
        scores = {}
        for dimension in JUDGE_DIMENSIONS:
            value = lowered.get(dimension)
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value.strip())
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
                break
            scores[dimension] = value
        else:
            return scores
    return None


class LLMJudge:
    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, attempts: int = 3,
                 max_tokens: int = 128, max_concurrency: int = 4, timeout_s: float = 60.0, max_retries: int = 3,
                 backoff_s: float = 1.0, max_backoff_s: float = 16.0) -> None:
        self.client = ChatClient(base_url, model, api_key_env, max_concurrency=max_concurrency, timeout_s=timeout_s,
                                 max_retries=max_retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s)
        self.attempts = max(1, attempts)
        self.max_tokens = max_tokens

    def judge(self, question: str, reference: str, prediction: str, context: str | None = None
              ) -> dict[str, int] | None:
        """Scores for one answer, or None (a failure: logged, never raised)."""
        messages = judge_messages(question, reference, prediction, context)
        for attempt in range(self.attempts):
            try:
                reply = self.client.complete(messages, max_tokens=self.max_tokens, temperature=0.0, seed=attempt)
            except ApiError as error:
                log.warning("judge request failed: %s", error)
                return None
            if (scores := parse_judgement(reply.text)) is not None:
                return scores
        log.warning("judge gave no valid JSON scores in %d attempts", self.attempts)
        return None

    def judge_group(self, group: QuestionGroup, predictions: Sequence[Any]) -> dict[str, dict[str, int] | None]:
        """``{question_id: scores or None}`` for one group's predictions (``QuestionPrediction`` objects)."""
        questions = {q.id: q for q in group.questions}
        jobs = [(p.question_id, questions[p.question_id], p.prediction) for p in predictions]

        def one(job):
            qid, question, prediction = job
            return qid, self.judge(question.text, question.answers[0], prediction, group.context_of(question))

        if len(jobs) <= 1 or self.client.max_concurrency == 1:
            return dict(map(one, jobs))

        with ThreadPoolExecutor(max_workers=min(len(jobs), self.client.max_concurrency)) as pool:
            return dict(pool.map(one, jobs))


def build_judge(judge_cfg: Any) -> LLMJudge | None:
    """The judge of a run's ``judge`` config node, or None when it is off."""
    if not judge_cfg or not judge_cfg.get("enabled", False):
        return None
    options = {k: v for k, v in dict(judge_cfg).items() if k != "enabled"}
    return LLMJudge(**options)


def judge_means(judgements: Sequence[dict[str, int] | None]) -> dict[str, float]:
    """``judge_<dimension>`` means and ``judge_mean`` over the judged answers (failures excluded)."""
    judged = [j for j in judgements if j]
    if not judged:
        return {f"judge_{d}": 0.0 for d in (*JUDGE_DIMENSIONS, "mean")}
    means = {f"judge_{d}": sum(j[d] for j in judged) / len(judged) for d in JUDGE_DIMENSIONS}
    means["judge_mean"] = sum(means.values()) / len(JUDGE_DIMENSIONS)
    return means
