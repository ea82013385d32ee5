"""QuAC as question groups: one dialogue = one group, its turns in dialogue order over one Wikipedia section.

Turns are conversational ("what happened after that?"), so each turn may need the ones before it: the group
carries gold chain edges (turn i-1 -> turn i), and ``max_questions`` keeps the *first* N turns, never a
sample. Gold answers are the annotators' spans; ``CANNOTANSWER`` spans are dropped, falling back to the
original answer, and a turn with no answerable span is skipped and counted (as in the reference). The
section text loses its trailing ``CANNOTANSWER`` marker; the article's background paragraph leads the context.

Reads the hub dataset (``allenai/quac``: one row per dialogue, turns as parallel lists) or the release JSON
(``val_v0.2.json``: SQuAD-like ``{data: [{title, section_title, background, paragraphs: [{context, qas}]}]}``).
"""

from __future__ import annotations

from typing import Any

from parallel_decoding.config import ConfigError
from parallel_decoding.data.grouping import select_groups
from parallel_decoding.data.schema import LoadedGroups, MalformedRowError, Question, QuestionGroup
from parallel_decoding.data.sources import read_hub_split, read_json_records

CANNOT_ANSWER = "CANNOTANSWER"


def load_quac(
    path: str | None = None,
    hub_id: str = "allenai/quac",
    split: str = "validation",
    revision: str | None = None,
    context_count: int | None = 10,
    min_questions: int = 3,
    max_questions: int | None = 5,
    seed: int = 13,
) -> LoadedGroups:
    """Dialogues with at least ``min_questions`` answerable turns; each keeps its first ``max_questions``."""
    loaded = LoadedGroups(groups=[])
    dialogues = release_dialogues(path) if path else hub_dialogues(
        read_hub_split(hub_id, split, revision=revision, dataset="QuAC"))
    candidates = [group for d in dialogues if (group := dialogue_group(d, loaded)) is not None]
    loaded.groups = select_groups(candidates, context_count=context_count, min_questions=min_questions,
                                  max_questions=max_questions, seed=seed, skipped=loaded)
    return loaded


def hub_dialogues(rows: Any) -> list[dict[str, Any]]:
    """Hub rows to ``{id, title, section, background, context, turns: [{id, question, answers, orig}]}``."""
    dialogues = []
    for row in rows:
        if not isinstance(row, dict):
            dialogues.append(None)
            continue
        texts = (row.get("answers") or {}).get("texts") or []
        orig = (row.get("orig_answers") or {}).get("texts") or []
        turn_ids = row.get("turn_ids") or []
        turns = [{"id": turn_ids[i] if i < len(turn_ids) else None, "question": q,
                  "answers": texts[i] if i < len(texts) else [], "orig": orig[i] if i < len(orig) else None}
                 for i, q in enumerate(row.get("questions") or [])]
        dialogues.append({"id": row.get("dialogue_id"), "title": row.get("wikipedia_page_title"),
                          "section": row.get("section_title"), "background": row.get("background"),
                          "context": row.get("context"), "turns": turns})
    return dialogues


def release_dialogues(path: str) -> list[dict[str, Any]]:
    """The release JSON (one paragraph = one dialogue) in the same shape as ``hub_dialogues``."""
    document = read_json_records(path)
    articles = document.get("data") if isinstance(document, dict) else None
    if not isinstance(articles, list):
        raise ConfigError(f"{path} is not QuAC JSON: expected an object with a 'data' list")
    dialogues: list[Any] = []
    for article in articles:
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            dialogues.append(None)
            continue
        for paragraph in article["paragraphs"]:
            if not isinstance(paragraph, dict):
                dialogues.append(None)
                continue
            turns = []
            for qa in paragraph.get("qas") or []:
                qa = qa if isinstance(qa, dict) else {}
                orig = qa.get("orig_answer") if isinstance(qa.get("orig_answer"), dict) else {}
                turns.append({"id": qa.get("id"), "question": qa.get("question"),
                              "answers": [a.get("text") for a in qa.get("answers") or [] if isinstance(a, dict)],
                              "orig": orig.get("text")})
            dialogues.append({"id": paragraph.get("id"), "title": article.get("title"),
                              "section": article.get("section_title"), "background": article.get("background"),
                              "context": paragraph.get("context"), "turns": turns})
    return dialogues


def dialogue_group(dialogue: dict[str, Any] | None, skipped: LoadedGroups) -> QuestionGroup | None:
    if dialogue is None or not str(dialogue.get("id") or "").strip():
        skipped.skip("dialogue without an id")
        return None
    section = dialogue.get("context")
    if not isinstance(section, str) or not section.replace(CANNOT_ANSWER, "").strip():
        skipped.skip("dialogue without context")
        return None
    questions: list[Question] = []
    for index, turn in enumerate(dialogue["turns"]):
        text = turn.get("question")
        answers = tuple(dict.fromkeys(a.strip() for a in turn.get("answers") or []
                                      if isinstance(a, str) and a.strip() and a.strip() != CANNOT_ANSWER))
        if not answers and isinstance(turn.get("orig"), str) and turn["orig"].strip() not in ("", CANNOT_ANSWER):
            answers = (turn["orig"].strip(),)
        if not isinstance(text, str) or not text.strip():
            skipped.skip("turn without a question")
        elif not answers:
            skipped.skip("unanswerable turn")
        else:
            turn_id = str(turn.get("id") or f"{dialogue['id']}_q#{index}")
            questions.append(Question(id=turn_id, text=text.strip(), answers=answers, context_index=0,
                                      metadata={"turn": index}))
    questions = skipped.first_of_each_id(questions, kind="turn")
    if not questions:
        skipped.skip("dialogue without answerable turns")
        return None
    title = " — ".join(str(p).strip() for p in (dialogue.get("title"), dialogue.get("section")) if p)
    body = section.strip()
    if body.endswith(CANNOT_ANSWER):
        body = body[: -len(CANNOT_ANSWER)].rstrip()
    background = dialogue.get("background") if isinstance(dialogue.get("background"), str) else ""
    context = "\n\n".join(part for part in (title, background.strip(), body) if part)
    chain = tuple((questions[i - 1].id, questions[i].id) for i in range(1, len(questions)))
    try:
        return QuestionGroup(id=str(dialogue["id"]), questions=tuple(questions), contexts=(context,),
                             dependencies=chain, metadata={"title": title})
    except MalformedRowError as error:
        skipped.skip(f"malformed dialogue ({error})")
        return None
