"""FanOutQA (closed book) as question groups: one group per top-level question, made of its sub-questions.

The dataset's human decomposition gives real gold dependency edges (``depends_on``), which is why it is here:
it is the test bed for dependency-aware strategies. The dev file ships inside the ``fanoutqa`` package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from parallel_decoding.config import ConfigError
from parallel_decoding.data.grouping import select_groups
from parallel_decoding.data.loading import load_json_file, resolve_data_path
from parallel_decoding.data.schema import LoadedGroups, Question, QuestionGroup

SHIPPED_FILES = {"dev": "fanout-final-dev.json", "test": "fanout-final-test.json"}


def load_fanoutqa(
    path: str | None = None,
    split: str = "dev",
    context_count: int | None = None,
    min_questions: int = 1,
    max_questions: int | None = 100,
    seed: int = 13,
) -> LoadedGroups:
    """Groups from ``path`` (a FanOutQA JSON list) or the file of ``split`` shipped with the package."""
    loaded = LoadedGroups(groups=[])
    file, rows = load_json_file(resolve_data_path(path) if path else shipped_file(split))  # damaged: one line
    if not isinstance(rows, list):
        raise ConfigError(f"{file} is not FanOutQA JSON: expected a list of questions")
    candidates = [group for row in rows if (group := group_from_row(row, loaded)) is not None]
    loaded.groups = select_groups(
        candidates,
        context_count=context_count,
        min_questions=min_questions,
        max_questions=max_questions,
        seed=seed,
        skipped=loaded,
    )
    return loaded


def shipped_file(split: str) -> Path:
    """The JSON of ``split`` inside the installed ``fanoutqa`` package (found without importing it)."""
    if split not in SHIPPED_FILES:
        raise ConfigError(f"unknown FanOutQA split {split!r}; expected one of {sorted(SHIPPED_FILES)}")
    spec = importlib.util.find_spec("fanoutqa")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the fanoutqa package is not installed; pass dataset.path=<FanOutQA json>")
    file = Path(next(iter(spec.submodule_search_locations))) / "data" / SHIPPED_FILES[split]
    if not file.is_file():
        raise FileNotFoundError(f"FanOutQA {split} file not found at {file}")
    return file


def group_from_row(row: Any, skipped: LoadedGroups) -> QuestionGroup | None:
    """One top-level question → its flattened decomposition, or None (counted) when nothing usable is left."""
    if not isinstance(row, dict) or not row.get("id"):
        skipped.skip("row without an id")
        return None
    decomposition = row.get("decomposition")
    if not isinstance(decomposition, list) or not decomposition:
        skipped.skip("row without decomposition")  # e.g. every row of the test split
        return None

    questions: list[Question] = []
    edges: list[tuple[str, str]] = []
    flatten(decomposition, inherited_prerequisites=[], depth=1, questions=questions, edges=edges, skipped=skipped)
    if not questions:
        skipped.skip("row without valid sub-questions")
        return None
    kept_ids = {q.id for q in questions}
    kept_edges = tuple(
        dict.fromkeys((src, dst) for src, dst in edges if src in kept_ids and dst in kept_ids and src != dst)
    )
    return QuestionGroup(
        id=str(row["id"]),
        questions=tuple(questions),
        contexts=(),
        dependencies=kept_edges,
        metadata={
            "question": row.get("question"),
            "answer": row.get("answer"),
            "categories": list(row.get("categories") or []),
        },
    )


def flatten(
    subquestions: list[Any],
    *,
    inherited_prerequisites: list[str],
    depth: int,
    questions: list[Question],
    edges: list[tuple[str, str]],
    skipped: LoadedGroups,
) -> None:
    """Append sub-questions depth first, children before the question they decompose.

    Edges: each ``depends_on`` entry; a decomposed question depends on all of its children; and children
    with no sibling prerequisite inherit the parent's prerequisites (its "it"/"them" refers to those).
    """
    for sub in subquestions:
        if not isinstance(sub, dict):
            skipped.skip("sub-question is not an object")
            continue
        question_id = str(sub.get("id") or "").strip()
        text = sub.get("question")
        answer = answer_text(sub.get("answer"))
        prerequisites = [str(p) for p in sub.get("depends_on") or []] or list(inherited_prerequisites)
        children = sub.get("decomposition") if isinstance(sub.get("decomposition"), list) else []
        if children:
            flatten(
                children,
                inherited_prerequisites=prerequisites,
                depth=depth + 1,
                questions=questions,
                edges=edges,
                skipped=skipped,
            )
            edges.extend((str(child.get("id")), question_id) for child in children if isinstance(child, dict))
        if not question_id:
            skipped.skip("sub-question without an id")
        elif not isinstance(text, str) or not text.strip():
            skipped.skip("sub-question without text")
        elif not answer:
            skipped.skip("sub-question without an answer")
        elif any(q.id == question_id for q in questions):
            skipped.skip("duplicate sub-question id")
        else:
            evidence = sub.get("evidence") if isinstance(sub.get("evidence"), dict) else {}
            questions.append(
                Question(
                    id=question_id,
                    text=text.strip(),
                    answers=(answer,),
                    context_index=None,
                    metadata={"depth": depth, "evidence_title": evidence.get("title")},
                )
            )
            edges.extend((prerequisite, question_id) for prerequisite in prerequisites)


def answer_text(answer: Any) -> str:
    """One gold string for FanOutQA's typed answers: lists → "a, b", dicts → "k: v, ...", bools → yes/no."""
    if isinstance(answer, bool):
        return "yes" if answer else "no"
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    if isinstance(answer, (int, float)):
        return str(answer)
    if isinstance(answer, str):
        return answer.strip()
    if isinstance(answer, list):
        return ", ".join(text for item in answer if (text := answer_text(item)))
    if isinstance(answer, dict):
        return ", ".join(f"{key}: {text}" for key, value in answer.items() if (text := answer_text(value)))
    return ""
