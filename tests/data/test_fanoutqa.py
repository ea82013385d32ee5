"""FanOutQA loader: gold edges from the shipped dev file, nested decompositions, typed answers, the YAML."""

import json

import pytest
from omegaconf import OmegaConf

from parallel_decoding.data.fanoutqa import answer_text, load_fanoutqa
from parallel_decoding.data.loading import PROJECT_ROOT, load_groups

FIRST_DEV_ROW = "7dcbbbdc7f1120cd"
FIRST_DEV_PREREQUISITE = "bca4ab7d1f4df703"


@pytest.fixture(scope="module")
def dev():
    return load_fanoutqa(context_count=None, min_questions=1, max_questions=None)


def test_every_dev_row_becomes_a_closed_book_group(dev):
    assert len(dev.groups) == 310
    for group in dev.groups:
        assert group.contexts == ()
        assert all(q.context_index is None for q in group.questions)
        assert {"question", "answer", "categories"} <= set(group.metadata)


def test_gold_edges_of_the_first_dev_row(dev):
    group = next(g for g in dev.groups if g.id == FIRST_DEV_ROW)
    assert len(group.questions) == 6
    assert group.questions[0].id == FIRST_DEV_PREREQUISITE
    assert len(group.dependencies) == 5
    assert {src for src, _ in group.dependencies} == {FIRST_DEV_PREREQUISITE}
    assert {dst for _, dst in group.dependencies} == {q.id for q in group.questions[1:]}
    assert group.questions[0].answers == ("Pat Burrell, Mark Mulder, Corey Patterson, Jeff Austin, JD Drew",)
    assert group.metadata["categories"] == ["Sports", "Statistics"]


def test_every_edge_endpoint_is_in_its_group(dev):
    assert sum(len(g.dependencies) for g in dev.groups) > 1000
    for group in dev.groups:
        ids = {q.id for q in group.questions}
        assert all(src in ids and dst in ids for src, dst in group.dependencies)


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Right", "Right"),
        (["a", "b", 3], "a, b, 3"),
        ({"Macau": 680000, "Maldives": 521000}, "Macau: 680000, Maldives: 521000"),
        (61.6, "61.6"),
        (5.0, "5"),
        (True, "yes"),
        (False, "no"),
        ("", ""),
        (None, ""),
    ],
)
def test_typed_answers_become_one_string(answer, expected):
    assert answer_text(answer) == expected


NESTED_ROW = {
    "id": "root",
    "question": "How many people live in the two smallest countries of the largest continent?",
    "answer": {"Macau": 680000, "Maldives": 521000},
    "categories": ["Geography"],
    "decomposition": [
        {"id": "continent", "question": "What is the largest continent?", "answer": "Asia",
         "depends_on": [], "decomposition": []},
        {
            "id": "populations",
            "question": "What is the population of the two smallest countries in it?",
            "answer": {"Macau": 680000, "Maldives": 521000},
            "depends_on": ["continent"],
            "decomposition": [
                {"id": "smallest", "question": "What are the two smallest countries in it?",
                 "answer": ["Macau", "Maldives"], "depends_on": [], "decomposition": []},
                {"id": "macau", "question": "What is the population of Macau?", "answer": 680000,
                 "depends_on": ["smallest"], "decomposition": []},
                {"id": "maldives", "question": "What is the population of Maldives?", "answer": 521000,
                 "depends_on": ["smallest"], "decomposition": []},
                {"id": "broken", "question": "Who knows?", "answer": "", "depends_on": ["smallest"]},
            ],
        },
    ],
}


@pytest.fixture
def fanout_file(tmp_path):
    rows = [NESTED_ROW, {"id": "no-decomposition", "question": "?", "answer": "x"}, ["not", "a", "row"]]
    path = tmp_path / "fanout.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_nested_decompositions_are_flattened_with_their_edges(fanout_file):
    loaded = load_fanoutqa(path=str(fanout_file), context_count=None, max_questions=None)
    (group,) = loaded.groups
    assert [q.id for q in group.questions] == ["continent", "smallest", "macau", "maldives", "populations"]
    assert [q.metadata["depth"] for q in group.questions] == [1, 2, 2, 2, 1]
    assert set(group.dependencies) == {
        ("continent", "smallest"),  # inherited: "it" in the child is the parent's prerequisite
        ("smallest", "macau"),
        ("smallest", "maldives"),
        ("smallest", "populations"),  # a decomposed question depends on its children
        ("macau", "populations"),
        ("maldives", "populations"),
        ("continent", "populations"),
    }
    assert loaded.skipped == {
        "sub-question without an answer": 1,
        "row without decomposition": 1,
        "row without an id": 1,
    }


def test_truncation_keeps_only_edges_among_kept_questions(fanout_file):
    (group,) = load_fanoutqa(path=str(fanout_file), context_count=None, min_questions=3, max_questions=3).groups
    assert [q.id for q in group.questions] == ["continent", "smallest", "macau"]
    assert set(group.dependencies) == {("continent", "smallest"), ("smallest", "macau")}


def test_test_split_has_no_decompositions_so_every_row_is_counted():
    loaded = load_fanoutqa(split="test")
    assert loaded.groups == []
    assert loaded.skipped == {"row without decomposition": 725}


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="unknown FanOutQA split"):
        load_fanoutqa(split="train")


def test_yaml_draws_ten_groups():
    dataset = OmegaConf.load(PROJECT_ROOT / "conf" / "dataset" / "fanoutqa.yaml")
    cfg = OmegaConf.create({"dataset": dataset})
    assert cfg.dataset.name == "fanoutqa"
    loaded = load_groups(cfg.dataset)
    assert len(loaded.groups) == 10
    assert loaded.groups == load_groups(cfg.dataset).groups
