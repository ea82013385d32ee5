"""Synthetic groups: extractive short answers, real dependencies, determinism, and the YAML."""

import random

import pytest
from omegaconf import OmegaConf

from parallel_decoding.data.loading import PROJECT_ROOT, load_groups
from parallel_decoding.data.synthetic import RELATIONS, generate_synthetic_group, load_synthetic


@pytest.fixture(scope="module")
def groups():
    return load_synthetic(context_count=200, min_questions=3, max_questions=8, seed=0).groups


def test_answers_are_short_verbatim_spans_of_the_context(groups):
    for group in groups:
        (context,) = group.contexts
        for question in group.questions:
            (answer,) = question.answers
            assert answer in context
            assert 1 <= len(answer.split()) <= 3
            assert question.context_index == 0


def test_group_sizes_and_ids(groups):
    assert all(3 <= len(g.questions) <= 8 for g in groups)
    assert {len(g.questions) for g in groups} == set(range(3, 9))
    assert len({g.id for g in groups}) == len(groups)


def test_dependency_edges_point_at_earlier_existing_questions(groups):
    assert sum(len(g.dependencies) for g in groups) >= len(groups)  # every group of >= 3 has a dependent
    for group in groups:
        position = {q.id: i for i, q in enumerate(group.questions)}
        for prerequisite, dependent in group.dependencies:
            assert position[prerequisite] < position[dependent]


def test_dependent_questions_need_their_prerequisite(groups):
    for group in groups:
        by_id = {q.id: q for q in group.questions}
        for prerequisite_id, dependent_id in group.dependencies:
            prerequisite, dependent = by_id[prerequisite_id], by_id[dependent_id]
            assert dependent.metadata["hops"] == 2
            assert prerequisite.answers[0] not in dependent.text  # the entity is only described
            assert all(dependent.answers[0] not in q.text for q in group.questions)  # nobody leaks the answer


def test_questions_in_a_group_are_distinct(groups):
    for group in groups:
        assert len({q.text for q in group.questions}) == len(group.questions)


def test_templates_vary(groups):
    relations = {q.metadata["relation"] for g in groups for q in g.questions}
    assert relations == set(RELATIONS) and len(relations) >= 6


def test_same_seed_same_groups_other_seed_other_groups():
    assert load_synthetic(context_count=5, seed=3) == load_synthetic(context_count=5, seed=3)
    assert load_synthetic(context_count=5, seed=3).groups != load_synthetic(context_count=5, seed=4).groups
    assert load_synthetic(context_count=3, seed=3).groups == load_synthetic(context_count=5, seed=3).groups[:3]


def test_no_dependencies_when_fraction_is_zero():
    loaded = load_synthetic(context_count=20, dependency_fraction=0.0)
    assert all(g.dependencies == () for g in loaded.groups)


def test_generator_gives_exactly_the_requested_size():
    rng = random.Random(1)
    for n in range(1, 11):
        group = generate_synthetic_group(rng, n, n, dependency_fraction=0.5)
        assert len(group.questions) == n
        assert group.id == f"synthetic-{n}"


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError):
        load_synthetic(context_count=0)
    with pytest.raises(ValueError):
        load_synthetic(min_questions=5, max_questions=4)


def test_yaml_generates_twenty_groups_of_three_to_six():
    dataset = OmegaConf.load(PROJECT_ROOT / "conf" / "dataset" / "synthetic.yaml")
    cfg = OmegaConf.create({"dataset": dataset})
    cfg.dataset.seed = 5
    loaded = load_groups(cfg.dataset)
    assert cfg.dataset.name == "synthetic"
    assert len(loaded.groups) == 20
    assert all(3 <= len(g.questions) <= 6 for g in loaded.groups)
    assert loaded.groups == load_synthetic(context_count=20, min_questions=3, max_questions=6, seed=5).groups
