"""DROP as question groups: one passage = one group of discrete-reasoning questions (numbers, spans, dates).

Every gold answer becomes one string: a number as written, a date as ``day month year`` (empty parts left
out, as the official evaluator does), a multi-span answer as its spans joined by ``DROP_SPAN_SEPARATOR`` (the
DROP metric splits them back and aligns span by span). The release JSON gives the original answer plus the
validated ones, each an alternative gold.

Hub ``ucinlp/drop`` rows (one per question) flatten every validated answer's spans into one list, so a
multi-span answer cannot be told from alternatives there; its spans are taken as alternatives. For exact
multi-span scoring use the release file ``drop_dataset_dev.json`` via ``dataset.path``
(``{section_id: {passage, qa_pairs: [{query_id, question, answer, validated_answers}]}}``).
"""

from __future__ import annotations

from typing import Any

from parallel_decoding.config import ConfigError
from parallel_decoding.data.grouping import select_groups
from parallel_decoding.data.schema import LoadedGroups, MalformedRowError, Question, QuestionGroup
from parallel_decoding.data.sources import read_hub_split, read_json_records

DROP_SPAN_SEPARATOR = " | "  # how loaders write a multi-span gold answer as one string (and predictions split)


def load_drop(
    path: str | None = None,
    hub_id: str = "ucinlp/drop",
    split: str = "validation",
    context_count: int | None = 10,
    min_questions: int = 1,
    max_questions: int | None = 5,
    seed: int = 13,
) -> LoadedGroups:
    loaded = LoadedGroups(groups=[])
    if path:
        document = read_json_records(path)
        if not isinstance(document, dict):
            raise ConfigError(f"{path} is not DROP JSON: expected an object keyed by passage id")
        passages = release_passages(document, loaded)
    else:
        passages = hub_passages(read_hub_split(hub_id, split, dataset="DROP"), loaded)
    candidates = []
    for section_id, (passage, questions) in passages.items():
        try:
            candidates.append(QuestionGroup(id=section_id, questions=tuple(loaded.first_of_each_id(questions)),
                                            contexts=(passage,)))
        except MalformedRowError as error:
            loaded.skip(f"malformed passage ({error})")
    loaded.groups = select_groups(candidates, context_count=context_count, min_questions=min_questions,
                                  max_questions=max_questions, seed=seed, skipped=loaded)
    return loaded


def answer_text(answer: Any) -> str:
    """One DROP answer object (``number`` / ``date`` / ``spans``) as a gold string ("" when empty)."""
    if not isinstance(answer, dict):
        return ""
    number = str(answer.get("number") or "").strip()
    if number:
        return number
    spans = [s.strip() for s in answer.get("spans") or [] if isinstance(s, str) and s.strip()]
    if spans:
        return DROP_SPAN_SEPARATOR.join(spans)
    date = answer.get("date") if isinstance(answer.get("date"), dict) else {}
    return " ".join(str(date.get(k) or "").strip() for k in ("day", "month", "year") if str(date.get(k) or "").strip())


def release_passages(document: dict[str, Any], skipped: LoadedGroups) -> dict[str, tuple[str, list[Question]]]:
    passages = {}
    for section_id, section in document.items():
        if not isinstance(section, dict) or not isinstance(section.get("passage"), str) \
                or not section["passage"].strip():
            skipped.skip("passage without text")
            continue
        questions = []
        for qa in section.get("qa_pairs") or []:
            qa = qa if isinstance(qa, dict) else {}
            golds = [answer_text(a) for a in [qa.get("answer"), *(qa.get("validated_answers") or [])]]
            question = skipped.question(qa.get("query_id"), qa.get("question"), golds, context_index=0)
            if question is not None:
                questions.append(question)
        if questions:
            passages[str(section_id)] = (section["passage"].strip(), questions)
        else:
            skipped.skip("passage without valid questions")
    return passages


def hub_passages(rows: Any, skipped: LoadedGroups) -> dict[str, tuple[str, list[Question]]]:
    passages: dict[str, tuple[str, list[Question]]] = {}
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("passage"), str) or not row.get("section_id"):
            skipped.skip("row without a passage")
            continue
        spans = (row.get("answers_spans") or {}).get("spans") or []
        question = skipped.question(row.get("query_id"), row.get("question"), spans, context_index=0)
        if question is not None:
            passages.setdefault(str(row["section_id"]), (row["passage"].strip(), []))[1].append(question)
    return passages

