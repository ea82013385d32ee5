"""HotpotQA (distractor setting) as multi-context groups: unrelated questions, each keeping its own context.

HotpotQA questions do not share passages, so a group is a seeded random chunk of questions (the reference's
grouping) and every question points at its own context (``Question.context_index``): the strategies run in
multi-context mode. A context is the question's paragraphs written ``title: sentences``, one per paragraph —
all ten of the distractor setting, or only the gold (supporting) ones with ``paragraphs=supporting``.

Reads the hub dataset (``hotpotqa/hotpot_qa``, config ``distractor``) or the original release JSON
(``hotpot_dev_distractor_v1.json``: a list of ``{_id, question, answer, supporting_facts, context}``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from parallel_decoding.config import ConfigError
from parallel_decoding.data.grouping import select_groups
from parallel_decoding.data.schema import LoadedGroups, Question, QuestionGroup
from parallel_decoding.data.sources import chunk_at_random, read_hub_split, read_json_records, stable_id

PARAGRAPH_MODES = ("all", "supporting")


def load_hotpot(
    path: str | None = None,
    hub_id: str = "hotpotqa/hotpot_qa",
    hub_config: str = "distractor",
    split: str = "validation",
    paragraphs: str = "all",
    context_count: int | None = 10,
    min_questions: int = 3,
    max_questions: int | None = 5,
    seed: int = 13,
) -> LoadedGroups:
    """Random chunks of ``min_questions``..``max_questions`` questions, each question with its own context."""
    if paragraphs not in PARAGRAPH_MODES:
        raise ConfigError(f"dataset.paragraphs must be one of {PARAGRAPH_MODES}, got {paragraphs!r}")
    loaded = LoadedGroups(groups=[])
    if path:
        rows = read_json_records(path)
        if not isinstance(rows, list):
            raise ConfigError(f"{path} is not HotpotQA JSON: expected a list of questions")
    else:
        rows = read_hub_split(hub_id, split, name=hub_config, dataset="HotpotQA")
    items = loaded.first_of_each_id((item for row in rows if (item := question_from_row(row, paragraphs, loaded))
                                     is not None), id_of=lambda item: item[0].id)
    chunks = chunk_at_random(items, min_size=min_questions, max_size=max_questions, seed=seed)
    candidates = [multi_context_group(chunk) for chunk in chunks]
    loaded.groups = select_groups(candidates, context_count=context_count, min_questions=min_questions,
                                  max_questions=None, seed=seed, skipped=loaded)
    return loaded


def question_from_row(row: Any, paragraphs: str, skipped: LoadedGroups) -> tuple[Question, str] | None:
    """One question and its context text, or None (counted) for a malformed row."""
    if not isinstance(row, dict):
        skipped.skip("row is not an object")
        return None
    answer = row.get("answer")
    question = skipped.question(row.get("_id") or row.get("id"), row.get("question"), [answer], context_index=0)
    if question is None:
        return None
    titled = context_paragraphs(row.get("context"))
    if not titled:
        skipped.skip("question without context paragraphs")
        return None
    supporting = supporting_titles(row.get("supporting_facts"))
    if paragraphs == "supporting":
        titled = [(title, body) for title, body in titled if title in supporting]
        if not titled:
            skipped.skip("question without supporting paragraphs")
            return None
    context = "\n\n".join(f"{title}: {body}" for title, body in titled)
    metadata = {"type": row.get("type"), "level": row.get("level"), "supporting_titles": sorted(supporting)}
    return dataclasses.replace(question, metadata=metadata), context


def context_paragraphs(context: Any) -> list[tuple[str, str]]:
    """``(title, text)`` per paragraph from the hub shape ``{title: [...], sentences: [[...]]}`` or the
    release shape ``[[title, [sentences]], ...]``; HotpotQA sentences carry their own leading spaces."""
    if isinstance(context, dict):
        pairs: Iterable = zip(context.get("title") or [], context.get("sentences") or [])
    elif isinstance(context, list):
        pairs = (p for p in context if isinstance(p, (list, tuple)) and len(p) == 2)
    else:
        return []
    out = []
    for title, sentences in pairs:
        body = "".join(s for s in sentences if isinstance(s, str)).strip() if isinstance(sentences, list) else ""
        if isinstance(title, str) and body:
            out.append((title, body))
    return out


def supporting_titles(facts: Any) -> set[str]:
    if isinstance(facts, dict):
        return {t for t in facts.get("title") or [] if isinstance(t, str)}
    if isinstance(facts, list):
        return {f[0] for f in facts if isinstance(f, (list, tuple)) and f and isinstance(f[0], str)}
    return set()


def multi_context_group(chunk: list[tuple[Question, str]]) -> QuestionGroup:
    """Questions from different sources in one group; identical contexts are stored once."""
    contexts: dict[str, int] = {}
    questions = []
    for question, context in chunk:
        index = contexts.setdefault(context, len(contexts))
        questions.append(Question(id=question.id, text=question.text, answers=question.answers,
                                  context_index=index, metadata=question.metadata))
    return QuestionGroup(id=stable_id("hotpot", *(q.id for q in questions)), questions=tuple(questions),
                         contexts=tuple(contexts), metadata={"grouping": "random"})
