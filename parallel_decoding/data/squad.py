"""SQuAD v1.1 as question groups: every paragraph (context) with its questions is one group.

Reads a local SQuAD JSON (``dataset.path``, or ``squad/dev-v1.1.json`` in the data dir) or the Hugging Face hub
split. Malformed rows are counted in ``LoadedGroups.skipped`` rather than raised, so one bad row never costs a
whole evaluation run.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Iterable, Mapping, Sequence

from parallel_decoding.config import ConfigError
from parallel_decoding.data.grouping import select_groups
from parallel_decoding.data.loading import load_json_file
from parallel_decoding.data.schema import LoadedGroups, Question, QuestionGroup
from parallel_decoding.data.sources import choose_source, read_hub_split

LOCAL_FIX = ("pass dataset.path=<a local SQuAD v1.1 JSON>, or put it in a data dir as squad/dev-v1.1.json and set "
             "PARALLEL_DECODING_DATA=<that dir> (or paths.data_dir=<that dir>)")
# Looked for in the data dir, per split, in this order (the official file names; half A is this project's copy).
DATA_FILES = {"validation": ("squad/dev-v1.1.json", "squad/dev-v1.1-half-a.json"), "train": ("squad/train-v1.1.json",)}


def load_squad(
    path: str | None = None,
    hub_id: str = "rajpurkar/squad",
    split: str = "validation",
    context_count: int | None = 10,
    min_questions: int = 1,
    max_questions: int | None = 5,
    seed: int = 13,
    data_dir: str | None = None,
    data_files: Mapping[str, Sequence[str]] | None = None,
) -> LoadedGroups:
    """Groups drawn from ``path`` if set, else from the first of ``data_files[split]`` found in ``data_dir``, else
    from ``hub_id``/``split`` (one log line says which)."""
    loaded = LoadedGroups(groups=[])
    source = choose_source("SQuAD", path=path, data_dir=data_dir,
                           data_files=tuple((data_files or DATA_FILES).get(split, ())), hub_id=hub_id, split=split)
    if source.kind != "hub":
        candidates = read_squad_file(source.location, loaded)
    else:
        candidates = group_hub_rows(read_hub_rows(hub_id, split), loaded)
    loaded.groups = select_groups(
        candidates,
        context_count=context_count,
        min_questions=min_questions,
        max_questions=max_questions,
        seed=seed,
        skipped=loaded,
    )
    return loaded


def read_squad_file(path: str, skipped: LoadedGroups) -> list[QuestionGroup]:
    """Every paragraph of a SQuAD v1.1 JSON file that has at least one valid question, in file order."""
    resolved, document = load_json_file(path)
    articles = document.get("data") if isinstance(document, dict) else None
    if not isinstance(articles, list):
        raise ConfigError(f"{resolved} is not SQuAD v1.1 JSON: expected an object with a 'data' list")

    groups = []
    for article_index, article in enumerate(articles):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            skipped.skip("article without a paragraphs list")
            continue
        title = str(article.get("title") or f"article-{article_index}")
        for paragraph_index, paragraph in enumerate(article["paragraphs"]):
            if not isinstance(paragraph, dict):
                skipped.skip("paragraph is not an object")
                continue
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                skipped.skip("paragraph without context")
                continue
            qas = paragraph.get("qas") if isinstance(paragraph.get("qas"), list) else []
            questions = valid_questions(qas, skipped)
            if not questions:
                skipped.skip("paragraph without valid questions")
                continue
            groups.append(
                QuestionGroup(
                    id=paragraph_id(title, paragraph_index, context),
                    questions=tuple(questions),
                    contexts=(context,),
                    metadata={"title": title},
                )
            )
    return groups


def read_hub_rows(hub_id: str, split: str) -> Iterable[dict[str, Any]]:
    """The flat hub split (one row per question); any failure becomes one line that names the local options."""
    return read_hub_split(hub_id, split, dataset="SQuAD", fix=LOCAL_FIX)


def group_hub_rows(rows: Iterable[Any], skipped: LoadedGroups) -> list[QuestionGroup]:
    """Hub rows grouped by their context, groups in first-seen order."""
    by_context: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if not isinstance(row, dict):
            skipped.skip("row is not an object")
            continue
        context = row.get("context")
        if not isinstance(context, str) or not context.strip():
            skipped.skip("row without context")
            continue
        answers = row.get("answers")
        texts = answers.get("text") if isinstance(answers, dict) else None
        qa = {"id": row.get("id"), "question": row.get("question"), "answers": texts, "title": row.get("title")}
        by_context.setdefault(context, []).append(qa)

    groups = []
    for context, qas in by_context.items():
        questions = valid_questions(qas, skipped)
        if not questions:
            continue  # each of its rows was already counted
        groups.append(
            QuestionGroup(
                id="squad-" + hashlib.sha1(context.encode("utf-8")).hexdigest()[:16],
                questions=tuple(questions),
                contexts=(context,),
                metadata={"title": str(qas[0].get("title") or "")},
            )
        )
    return groups


def valid_questions(qas: list[Any], skipped: LoadedGroups) -> list[Question]:
    """The well-formed questions of one paragraph, counting each bad one under a reason."""
    questions: list[Question] = []
    seen_ids: set[str] = set()
    for qa in qas:
        if not isinstance(qa, dict):
            skipped.skip("question row is not an object")
            continue
        question_id = str(qa.get("id") or "").strip()
        text = qa.get("question")
        answers = answer_texts(qa.get("answers"))
        if not question_id:
            skipped.skip("question without an id")
        elif not isinstance(text, str) or not text.strip():
            skipped.skip("question without text")
        elif not answers:
            skipped.skip("question without answers")
        elif question_id in seen_ids:
            skipped.skip("duplicate question id")
        else:
            seen_ids.add(question_id)
            questions.append(Question(id=question_id, text=text.strip(), answers=answers, context_index=0))
    return questions


def answer_texts(answers: Any) -> tuple[str, ...]:
    """Distinct non-empty answer strings, first-seen order (local: list of dicts; hub: list of str)."""
    if not isinstance(answers, (list, tuple)):
        return ()
    texts = []
    for answer in answers:
        text = answer.get("text") if isinstance(answer, dict) else answer
        if isinstance(text, str) and text.strip() and text not in texts:
            texts.append(text)
    return tuple(texts)


def paragraph_id(title: str, paragraph_index: int, context: str) -> str:
    """``<title>-p<index>-<hash of the context>``: readable, and unique even when two articles share a title
    (the same id for the same paragraph in every run, so a resume finds its finished groups)."""
    return f"{slug(title)}-p{paragraph_index}-{hashlib.sha1(context.encode('utf-8')).hexdigest()[:8]}"


def slug(title: str) -> str:
    """A title made safe for ids and file names (SQuAD titles already are, e.g. ``1973_oil_crisis``)."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", title).strip("_") or "untitled"
