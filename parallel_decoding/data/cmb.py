"""CMB (Chinese Medical Benchmark): CMB-Clin case analyses and CMB-Exam multiple choice, as question groups.

* ``load_cmb_clin``: one clinical case = one group; the case description is the shared context and its
  ``QA_pairs`` (long free-text answers, scored with BLEU/ROUGE and the judge) are the questions, in order.
  Hub ``FreedomIntelligence/CMB`` config ``CMB-Clin``, or the release ``CMB-Clin-qa.json``
  (``[{id, title, description, QA_pairs: [{question, solution|answer}]}]``).
* ``load_cmb_exam``: exam questions (``option`` letter -> text, ``answer`` the letter(s)) grouped three ways
  from ``fzkuji/CMB-Exam-Grouped``:
  ``random`` — every question pooled and chunked at random (closed book);
  ``subdomain`` — questions that share a medical term (closed book; config ``subdomain``,
  rows ``{medical_term, questions, num_questions}``);
  ``context`` — questions on one shared case background (config ``context``,
  rows ``{background, questions, num_questions}``).
  Options are written into the question text; the gold answer is the option letter(s).
"""

from __future__ import annotations

from typing import Any

from parallel_decoding.config import ConfigError
from parallel_decoding.data.grouping import select_groups
from parallel_decoding.data.schema import LoadedGroups, MalformedRowError, Question, QuestionGroup
from parallel_decoding.data.sources import (
    chunk_at_random,
    choice_options,
    multiple_choice_text,
    read_hub_split,
    read_json_records,
    stable_id,
)

EXAM_GROUPINGS = ("random", "subdomain", "context")


def load_cmb_clin(
    path: str | None = None,
    hub_id: str = "FreedomIntelligence/CMB",
    hub_config: str = "CMB-Clin",
    split: str = "test",
    context_count: int | None = 10,
    min_questions: int = 1,
    max_questions: int | None = None,
    seed: int = 13,
) -> LoadedGroups:
    loaded = LoadedGroups(groups=[])
    rows = read_json_records(path) if path else read_hub_split(hub_id, split, name=hub_config, dataset="CMB-Clin")
    if path and not isinstance(rows, list):
        raise ConfigError(f"{path} is not CMB-Clin JSON: expected a list of cases")
    candidates = [group for row in rows if (group := clinical_case(row, loaded)) is not None]
    loaded.groups = select_groups(candidates, context_count=context_count, min_questions=min_questions,
                                  max_questions=max_questions, seed=seed, skipped=loaded)
    return loaded


def clinical_case(row: Any, skipped: LoadedGroups) -> QuestionGroup | None:
    if not isinstance(row, dict) or row.get("id") in (None, ""):
        skipped.skip("case without an id")
        return None
    description = row.get("description")
    if not isinstance(description, str) or not description.strip():
        skipped.skip("case without a description")
        return None
    questions = []
    for index, pair in enumerate(row.get("QA_pairs") or []):
        pair = pair if isinstance(pair, dict) else {}
        text = pair.get("question")
        answer = pair.get("solution", pair.get("answer"))  # the release says "solution", some copies "answer"
        if not isinstance(text, str) or not text.strip():
            skipped.skip("QA pair without a question")
        elif not isinstance(answer, str) or not answer.strip():
            skipped.skip("QA pair without an answer")
        else:
            questions.append(Question(id=f"cmb-clin-{row['id']}-q{index}", text=text.strip(),
                                      answers=(answer.strip(),), context_index=0))
    if not questions:
        skipped.skip("case without valid QA pairs")
        return None
    return QuestionGroup(id=f"cmb-clin-{row['id']}", questions=tuple(questions), contexts=(description.strip(),),
                         metadata={"title": row.get("title")})


def load_cmb_exam(
    grouping: str = "subdomain",
    path: str | None = None,
    hub_id: str = "fzkuji/CMB-Exam-Grouped",
    split: str = "train",
    context_count: int | None = 10,
    min_questions: int = 2,
    max_questions: int | None = 5,
    seed: int = 13,
) -> LoadedGroups:
    """``grouping`` picks the source config (``random`` pools the ``subdomain`` rows). A local ``path`` holds
    rows of that config (JSON list or JSONL)."""
    if grouping not in EXAM_GROUPINGS:
        raise ConfigError(f"dataset.grouping must be one of {EXAM_GROUPINGS}, got {grouping!r}")
    loaded = LoadedGroups(groups=[])
    source_config = "context" if grouping == "context" else "subdomain"
    rows = read_json_records(path) if path else read_hub_split(hub_id, split, name=source_config,
                                                               dataset=f"CMB-Exam-Grouped ({source_config})")
    if path and not isinstance(rows, list):
        raise ConfigError(f"{path} is not CMB-Exam-Grouped rows: expected a list")

    if grouping == "random":
        pooled = loaded.first_of_each_id(  # a question listed under two terms is asked once (its id hashes its text)
            question for row in rows for raw in (row.get("questions") if isinstance(row, dict) else None) or []
            if (question := exam_question(raw, None, loaded)) is not None)
        chunks = chunk_at_random(pooled, min_size=min_questions, max_size=max_questions, seed=seed)
        candidates = [QuestionGroup(id=stable_id("cmb-exam-random", *(q.id for q in chunk)), questions=tuple(chunk),
                                    metadata={"grouping": "random"}) for chunk in chunks]
        max_questions = None  # chunks already have their drawn sizes
    else:
        candidates = [group for row in rows if (group := exam_group(row, grouping, loaded)) is not None]
    loaded.groups = select_groups(candidates, context_count=context_count, min_questions=min_questions,
                                  max_questions=max_questions, seed=seed, skipped=loaded)
    return loaded


def exam_group(row: Any, grouping: str, skipped: LoadedGroups) -> QuestionGroup | None:
    if not isinstance(row, dict):
        skipped.skip("row is not an object")
        return None
    if grouping == "context":
        background = row.get("background")
        if not isinstance(background, str) or not background.strip():
            skipped.skip("group without a background")
            return None
        key, contexts, context_index = background.strip(), (background.strip(),), 0
    else:
        term = row.get("medical_term")
        if not isinstance(term, str) or not term.strip():
            skipped.skip("group without a medical term")
            return None
        key, contexts, context_index = term.strip(), (), None
    questions = skipped.first_of_each_id(question for raw in row.get("questions") or []
                                         if (question := exam_question(raw, context_index, skipped)) is not None)
    if not questions:
        skipped.skip("group without valid questions")
        return None
    try:
        return QuestionGroup(id=stable_id(f"cmb-exam-{grouping}", key), questions=tuple(questions),
                             contexts=contexts, metadata={"grouping": grouping, "key": key})
    except MalformedRowError as error:
        skipped.skip(f"malformed group ({error})")
        return None


def exam_question(raw: Any, context_index: int | None, skipped: LoadedGroups) -> Question | None:
    """One exam question; its id is a hash of stem and options (the source rows carry no ids)."""
    if not isinstance(raw, dict):
        skipped.skip("question is not an object")
        return None
    stem = raw.get("question")
    options = choice_options(raw.get("option"))
    letters = {c for c in str(raw.get("answer") or "").upper() if c.isalpha()}
    if not isinstance(stem, str) or not stem.strip():
        skipped.skip("question without text")
        return None
    if len(options) < 2:
        skipped.skip("question without options")
        return None
    if not letters or not letters <= set(options):
        skipped.skip("question whose answer is not an option letter")
        return None
    return Question(
        id=stable_id("cmb-exam", stem.strip(), *options.values()),
        text=multiple_choice_text(stem, options, language="zh"),
        answers=("".join(sorted(letters)),),
        context_index=context_index,
        metadata={"options": options, "exam_type": raw.get("exam_type"), "exam_subject": raw.get("exam_subject"),
                  "question_type": raw.get("question_type")},
    )
