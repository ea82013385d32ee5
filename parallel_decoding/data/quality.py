"""QuALITY as question groups: one long article (~5k words) = one group of four-option questions.

``hard_only`` keeps the questions the dataset marks hard (annotators under time pressure got them wrong, so
they need the whole article). Options go into the question text; the gold answer is the option letter.

Reads the hub dataset (``emozilla/quality``: one row per question, ``article, question, options, answer``
(0-based), ``hard``) or a release JSONL (``QuALITY.v1.0.1.htmlstripped.dev``: one article per line with
``questions: [{question, question_unique_id, options, gold_label (1-based), difficult}]``). Release test
files carry no gold labels; such questions are skipped and counted.
"""

from __future__ import annotations

from typing import Any

from parallel_decoding.data.grouping import select_groups
from parallel_decoding.data.schema import LoadedGroups, Question, QuestionGroup
from parallel_decoding.data.sources import (
    CHOICE_LETTERS,
    choice_options,
    multiple_choice_text,
    read_hub_split,
    read_json_records,
    stable_id,
)


def load_quality(
    path: str | None = None,
    hub_id: str = "emozilla/quality",
    split: str = "validation",
    hard_only: bool = False,
    context_count: int | None = 10,
    min_questions: int = 1,
    max_questions: int | None = 5,
    seed: int = 13,
) -> LoadedGroups:
    loaded = LoadedGroups(groups=[])
    rows = read_json_records(path) if path else read_hub_split(hub_id, split, dataset="QuALITY")
    if isinstance(rows, dict):
        rows = [rows]
    articles: dict[str, dict[str, Any]] = {}  # article text -> {title, id, questions}
    for row in rows:
        if not isinstance(row, dict):
            loaded.skip("row is not an object")
        elif isinstance(row.get("questions"), list):  # release: one article per row
            add_release_article(row, articles, hard_only, loaded)
        else:  # hub: one question per row
            add_hub_question(row, articles, hard_only, loaded)
    candidates = []
    for text, article in articles.items():
        if article["questions"]:
            candidates.append(QuestionGroup(id=article["id"], questions=tuple(article["questions"]), contexts=(text,),
                                            metadata={"title": article["title"]}))
        else:
            loaded.skip("article without (hard) questions")
    loaded.groups = select_groups(candidates, context_count=context_count, min_questions=min_questions,
                                  max_questions=max_questions, seed=seed, skipped=loaded)
    return loaded


def article_entry(articles: dict[str, dict[str, Any]], text: str, article_id: Any, title: Any) -> dict[str, Any]:
    return articles.setdefault(text, {"id": str(article_id or stable_id("quality", text)), "title": title or "",
                                      "questions": []})


def add_release_article(row: dict[str, Any], articles: dict, hard_only: bool, skipped: LoadedGroups) -> None:
    text = row.get("article")
    if not isinstance(text, str) or not text.strip():
        skipped.skip("article without text")
        return
    entry = article_entry(articles, text.strip(), row.get("article_id"), row.get("title"))
    for raw in row["questions"]:
        raw = raw if isinstance(raw, dict) else {}
        label = raw.get("gold_label")
        index = label - 1 if isinstance(label, int) else None  # the release numbers options from 1
        add_question(entry, raw.get("question"), raw.get("options"), index, bool(raw.get("difficult")),
                     raw.get("question_unique_id"), hard_only, skipped)


def add_hub_question(row: dict[str, Any], articles: dict, hard_only: bool, skipped: LoadedGroups) -> None:
    text = row.get("article")
    if not isinstance(text, str) or not text.strip():
        skipped.skip("question without an article")
        return
    entry = article_entry(articles, text.strip(), None, None)
    answer = row.get("answer")
    add_question(entry, row.get("question"), row.get("options"), answer if isinstance(answer, int) else None,
                 bool(row.get("hard")), None, hard_only, skipped)


def add_question(entry: dict[str, Any], stem: Any, raw_options: Any, gold_index: int | None, hard: bool,
                 question_id: Any, hard_only: bool, skipped: LoadedGroups) -> None:
    options = choice_options(raw_options)
    if not isinstance(stem, str) or not stem.strip():
        skipped.skip("question without text")
    elif len(options) < 2:
        skipped.skip("question without options")
    elif gold_index is None or not 0 <= gold_index < len(options) or CHOICE_LETTERS[gold_index] not in options:
        skipped.skip("question without a gold label")
    elif hard_only and not hard:
        skipped.skip("easy question (hard_only)")
    else:
        qid = str(question_id or stable_id(entry["id"], stem.strip(), *options.values()))
        if any(q.id == qid for q in entry["questions"]):
            skipped.skip("duplicate question")
            return
        entry["questions"].append(Question(id=qid, text=multiple_choice_text(stem, options), context_index=0,
                                           answers=(CHOICE_LETTERS[gold_index],),
                                           metadata={"options": options, "hard": hard}))
