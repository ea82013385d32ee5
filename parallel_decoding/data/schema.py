"""The one data shape every dataset loader produces and every strategy consumes: a *question group*.

A group is several questions asked over shared material (one context, or one context per question in
multi-context datasets), optionally with gold dependency edges between the questions. Strategies,
metrics and results files only ever see this shape, so a new dataset is one loader module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from collections.abc import Iterable
from typing import Any


class MalformedRowError(ValueError):
    """A source row that cannot become a valid question; loaders skip and count it."""


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...]  # gold answers; metrics take the max over them
    context_index: int | None = 0  # which of the group's contexts this question reads; None = closed book
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id or not str(self.id).strip():
            raise MalformedRowError("question without an id")
        if not self.text or not self.text.strip():
            raise MalformedRowError(f"question {self.id!r} has no text")
        if not self.answers or not any(a.strip() for a in self.answers):
            raise MalformedRowError(f"question {self.id!r} has no gold answer")


@dataclass(frozen=True)
class QuestionGroup:
    """Questions that share context. ``dependencies`` are gold edges ``(prerequisite_id, dependent_id)``."""

    id: str
    questions: tuple[Question, ...]
    contexts: tuple[str, ...] = ()
    dependencies: tuple[tuple[str, str], ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.questions:
            raise MalformedRowError(f"group {self.id!r} has no questions")
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            raise MalformedRowError(f"group {self.id!r} has duplicate question ids")
        for q in self.questions:
            if q.context_index is not None and not 0 <= q.context_index < len(self.contexts):
                raise MalformedRowError(f"question {q.id!r} points at missing context {q.context_index}")
        known = set(ids)
        for src, dst in self.dependencies:
            if src not in known or dst not in known or src == dst:
                raise MalformedRowError(f"group {self.id!r} has a bad dependency edge {src}->{dst}")

    @property
    def shared_context(self) -> str | None:
        """The single context every question reads, or None for multi-context / closed-book groups."""
        if len(self.contexts) == 1 and all(q.context_index == 0 for q in self.questions):
            return self.contexts[0]
        return None

    def context_of(self, question: Question) -> str | None:
        return None if question.context_index is None else self.contexts[question.context_index]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "QuestionGroup":
        questions = tuple(
            Question(
                id=str(q["id"]),
                text=q["text"],
                answers=tuple(q["answers"]),
                context_index=q.get("context_index", 0),
                metadata=dict(q.get("metadata") or {}),
            )
            for q in row["questions"]
        )
        return cls(
            id=str(row["id"]),
            questions=questions,
            contexts=tuple(row.get("contexts") or ()),
            dependencies=tuple(tuple(e) for e in row.get("dependencies") or ()),
            metadata=dict(row.get("metadata") or {}),
        )


@dataclass
class LoadedGroups:
    """What a dataset loader returns: the groups, how many source rows it had to skip (and why), and how many
    group ids it had to rename to keep them unique (``renamed``)."""

    groups: list[QuestionGroup]
    skipped: dict[str, int] = field(default_factory=dict)
    renamed: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    def first_of_each_id(self, items: Iterable[Any], id_of: Any = lambda item: item.id, *,
                         kind: str = "question") -> list[Any]:
        """``items`` with every repeat of an id left out and counted (the first one wins): results, resume and
        dependency edges key on ids, so two questions under one id would overwrite each other's answers."""
        seen: set[str] = set()
        kept = []
        for item in items:
            key = str(id_of(item))
            if key in seen:
                self.skip(f"{kind} id repeated (later one skipped)")
                continue
            seen.add(key)
            kept.append(item)
        return kept

    def question(self, question_id: Any, text: Any, answers: Iterable[Any], *, kind: str = "question",
                 **fields: Any) -> Question | None:
        """A Question from a source row's raw fields, or None with the row counted under what it lacks
        ("<kind> without an id / text / an answer"); answers are stripped and de-duplicated in order."""
        question_id = str(question_id or "").strip()
        golds = tuple(dict.fromkeys(a.strip() for a in answers if isinstance(a, str) and a.strip()))
        if not question_id:
            self.skip(f"{kind} without an id")
        elif not isinstance(text, str) or not text.strip():
            self.skip(f"{kind} without text")
        elif not golds:
            self.skip(f"{kind} without an answer")
        else:
            return Question(id=question_id, text=text.strip(), answers=golds, **fields)
        return None


def make_ids_unique(groups: Iterable[QuestionGroup], loaded: LoadedGroups) -> list[QuestionGroup]:
    """Group and question ids unique across the whole dataset, every change counted in ``loaded``.

    Results rows, resume markers and splits key on ``(strategy, group id)`` and question ids; a collision would
    mix two groups' answers or mark an unfinished group as done. A question id already used by an earlier group
    is skipped (counted) in the later one, a group left with no question is skipped, and a repeated group id
    gets a ``~2``, ``~3``... suffix in input order (the same input always gives the same ids; counted in
    ``loaded.renamed``).
    """
    used_questions: set[str] = set()
    used_groups: set[str] = set()
    out = []
    for group in groups:
        kept = tuple(q for q in group.questions if q.id not in used_questions)
        if len(kept) < len(group.questions):
            loaded.skip("question id already used by another group (later one skipped)",
                        len(group.questions) - len(kept))
            if not kept:
                loaded.skip("group whose every question id was already used")
                continue
            kept_ids = {q.id for q in kept}
            group = replace(group, questions=kept, dependencies=tuple(
                (src, dst) for src, dst in group.dependencies if src in kept_ids and dst in kept_ids))
        used_questions.update(q.id for q in kept)
        if group.id in used_groups:
            suffix = 2
            while f"{group.id}~{suffix}" in used_groups:
                suffix += 1
            reason = "group id shared with an earlier group (renamed with a ~N suffix)"
            loaded.renamed[reason] = loaded.renamed.get(reason, 0) + 1
            group = replace(group, id=f"{group.id}~{suffix}")
        used_groups.add(group.id)
        out.append(group)
    return out
