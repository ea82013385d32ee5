"""select_groups: the reference semantics every loader relies on (filter, seeded shuffle, first N, limit)."""

import random

import pytest

from parallel_decoding.data import LoadedGroups, Question, QuestionGroup, select_groups


def make_group(group_id: str, size: int, edges=()) -> QuestionGroup:
    questions = tuple(Question(id=f"{group_id}-{i}", text=f"question {i}?", answers=(f"a{i}",)) for i in range(size))
    return QuestionGroup(id=group_id, questions=questions, contexts=("context",), dependencies=tuple(edges))


@pytest.fixture
def candidates():
    sizes = [2, 5, 3, 7, 4, 1, 6, 5, 3, 8]
    return [make_group(f"g{i}", size) for i, size in enumerate(sizes)]


def test_min_equals_max_takes_first_n_in_original_order_after_seeded_shuffle(candidates):
    selected = select_groups(candidates, context_count=None, min_questions=3, max_questions=3, seed=13)
    eligible = [g for g in candidates if len(g.questions) >= 3]
    random.Random(13).shuffle(eligible)
    assert [g.id for g in selected] == [g.id for g in eligible]
    for group in selected:
        assert [q.id for q in group.questions] == [f"{group.id}-{i}" for i in range(3)]


def test_groups_below_min_are_dropped_and_counted(candidates):
    skipped = LoadedGroups(groups=[])
    selected = select_groups(candidates, context_count=None, min_questions=4, max_questions=4, seed=0, skipped=skipped)
    assert {g.id for g in selected} == {g.id for g in candidates if len(g.questions) >= 4}
    assert skipped.skipped == {"group with fewer than 4 questions": 4}


def test_random_counts_stay_in_range_and_are_capped_at_group_size(candidates):
    for seed in range(20):
        for group in select_groups(candidates, context_count=None, min_questions=3, max_questions=6, seed=seed):
            original = next(g for g in candidates if g.id == group.id)
            assert 3 <= len(group.questions) <= min(6, len(original.questions))
            assert group.questions == original.questions[: len(group.questions)]


def test_random_counts_vary_across_groups(candidates):
    big = [make_group(f"b{i}", 10) for i in range(30)]
    sizes = {len(g.questions) for g in select_groups(big, context_count=None, min_questions=2, max_questions=9, seed=1)}
    assert len(sizes) > 3


def test_same_seed_same_selection_other_seed_other_order(candidates):
    def draw(seed):
        return select_groups(candidates, context_count=None, min_questions=2, max_questions=6, seed=seed)

    assert draw(7) == draw(7)
    assert [g.id for g in draw(7)] != [g.id for g in draw(8)]


@pytest.mark.parametrize("context_count, expected", [(3, 3), (None, 9), (0, 9), (-1, 9), (50, 9)])
def test_context_count_limits_the_number_of_groups(candidates, context_count, expected):
    selected = select_groups(candidates, context_count=context_count, min_questions=2, max_questions=2, seed=13)
    assert len(selected) == expected


def test_context_count_takes_a_prefix_of_the_full_draw(candidates):
    everything = select_groups(candidates, context_count=None, min_questions=2, max_questions=5, seed=3)
    first_three = select_groups(candidates, context_count=3, min_questions=2, max_questions=5, seed=3)
    assert first_three == everything[:3]


def test_max_none_keeps_every_question(candidates):
    selected = select_groups(candidates, context_count=None, min_questions=1, max_questions=None, seed=13)
    assert sorted(len(g.questions) for g in selected) == sorted(len(g.questions) for g in candidates)


def test_edges_into_dropped_questions_are_dropped():
    group = make_group("g", 4, edges=[("g-0", "g-1"), ("g-0", "g-3"), ("g-2", "g-1"), ("g-3", "g-2")])
    (cut,) = select_groups([group], context_count=None, min_questions=3, max_questions=3, seed=0)
    assert cut.dependencies == (("g-0", "g-1"), ("g-2", "g-1"))


def test_bad_bounds_are_rejected(candidates):
    with pytest.raises(ValueError):
        select_groups(candidates, context_count=None, min_questions=0, max_questions=3, seed=0)
    with pytest.raises(ValueError):
        select_groups(candidates, context_count=None, min_questions=4, max_questions=3, seed=0)
