"""Which groups, and how many questions of each, a run sees.

Every loader reads all candidate groups first and then calls ``select_groups``, so group size and sample
count mean the same thing for every dataset and are reproducible from the seed alone. The semantics follow
the reference implementation: filter by ``min_questions``, shuffle with ``random.Random(seed)``, then take
the first N questions of each group (N fixed when min == max, otherwise a seeded draw in [min, max]).
"""

from __future__ import annotations

import dataclasses
import random

from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import LoadedGroups, QuestionGroup, make_ids_unique


def select_groups(
    candidates: list[QuestionGroup],
    *,
    context_count: int | None,
    min_questions: int,
    max_questions: int | None,
    seed: int,
    skipped: LoadedGroups | None = None,
) -> list[QuestionGroup]:
    """Draw up to ``context_count`` groups (None or <= 0 = all) of ``min_questions``..``max_questions`` questions.

    ``max_questions=None`` keeps every question of each group (no upper bound, no draw). Groups that are too
    small are counted in ``skipped`` when given; dependency edges into dropped questions are dropped.
    """
    if min_questions < 1:
        raise ConfigError(f"min_questions must be >= 1, got {min_questions}")
    if max_questions is not None and max_questions < min_questions:
        raise ConfigError(f"max_questions ({max_questions}) is below min_questions ({min_questions})")

    if skipped is not None:  # before the draw, so a dropped repeat never shrinks a drawn group
        candidates = make_ids_unique(candidates, skipped)
    eligible = []
    for group in candidates:
        if len(group.questions) >= min_questions:
            eligible.append(group)
        elif skipped is not None:
            skipped.skip(f"group with fewer than {min_questions} questions")

    rng = random.Random(seed)
    rng.shuffle(eligible)
    limit = context_count if context_count is not None and context_count > 0 else len(eligible)

    selected = []
    for group in eligible[:limit]:
        if max_questions is None:
            count = len(group.questions)
        elif min_questions == max_questions:
            count = min_questions
        else:
            count = min(rng.randint(min_questions, max_questions), len(group.questions))
        selected.append(first_questions(group, count))
    return selected


def first_questions(group: QuestionGroup, count: int) -> QuestionGroup:
    """The group cut to its first ``count`` questions, keeping only edges whose both ends survive."""
    if count >= len(group.questions):
        return group
    kept = group.questions[:count]
    kept_ids = {q.id for q in kept}
    edges = tuple((src, dst) for src, dst in group.dependencies if src in kept_ids and dst in kept_ids)
    return dataclasses.replace(group, questions=kept, dependencies=edges)
