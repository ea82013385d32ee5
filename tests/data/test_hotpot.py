"""HotpotQA loader: release JSON and hub rows, multi-context groups (each question its own context)."""

import pytest

from parallel_decoding.data.hotpot import load_hotpot
from parallel_decoding.data.loading import load_groups
from parallel_decoding.prompting.prompts import all_in_one_messages, single_question_messages
from tests.data.dataset_fixtures import write_fixture
from tests.data.hub_rows import serve_hub_rows
from tests.helpers import compose_config


def test_config_composes_and_loads_the_fixture(tmp_path):
    path = write_fixture("hotpot", tmp_path)
    cfg = compose_config("evaluate", ["dataset=hotpot", f"dataset.path={path}", "dataset.group_size=2"])
    assert cfg.dataset.metrics == "qa"
    loaded = load_groups(cfg.dataset)
    assert sorted(q.id for g in loaded.groups for q in g.questions) == ["h1", "h2", "h3", "h4"]
    assert all(len(g.questions) == 2 for g in loaded.groups)
    assert loaded.skipped == {"question without text": 1, "question without an answer": 1,
                              "question without context paragraphs": 1, "row is not an object": 1}


def test_each_question_keeps_its_own_context(tmp_path):
    loaded = load_hotpot(path=str(write_fixture("hotpot", tmp_path)), min_questions=4, max_questions=4,
                         context_count=None)
    [group] = loaded.groups
    assert group.shared_context is None and len(group.contexts) == 4
    by_id = {q.id: q for q in group.questions}
    assert group.context_of(by_id["h1"]) == ("Quillmark: Quillmark is a kettle maker. Its works stand in Dunmere.\n\n"
                                             "Dunmere: Dunmere is a town. It lies on the Ost.\n\n"
                                             "Kirwick: Kirwick is a village.")
    assert by_id["h4"].answers == ("the Ost",)
    # The strategies' prompts carry each question's own passage.
    assert "Ostkir Lanes was founded" in single_question_messages(group, by_id["h2"])[-1]["content"]
    user = all_in_one_messages(group)[-1]["content"]
    assert all(f"Passage (Q{i})" in user for i in range(1, 5))


def test_supporting_paragraphs_only(tmp_path):
    loaded = load_hotpot(path=str(write_fixture("hotpot", tmp_path)), paragraphs="supporting", min_questions=1,
                         max_questions=1, context_count=None)
    contexts = {g.questions[0].id: g.contexts[0] for g in loaded.groups}
    assert contexts["h2"] == "Ostkir Lanes: Ostkir Lanes was founded by Vella Rane."
    assert "Kirwick" not in contexts["h1"]


def test_grouping_is_seeded(tmp_path):
    path = str(write_fixture("hotpot", tmp_path))
    first = load_hotpot(path=path, min_questions=1, max_questions=3, context_count=None, seed=3)
    assert first.groups == load_hotpot(path=path, min_questions=1, max_questions=3, context_count=None, seed=3).groups
    assert all(1 <= len(g.questions) <= 3 for g in first.groups)


def test_hub_rows(monkeypatch):
    row = {"id": "5a8b", "question": "Which town?", "answer": "Dunmere", "type": "bridge", "level": "easy",
           "supporting_facts": {"title": ["Quillmark"], "sent_id": [1]},
           "context": {"title": ["Quillmark", "Other"],
                       "sentences": [["Quillmark makes kettles.", " Its works are in Dunmere."], ["Unrelated."]]}}
    calls = serve_hub_rows(monkeypatch, {("hotpotqa/hotpot_qa", "distractor", "validation"): [row]})
    [group] = load_hotpot(min_questions=1, max_questions=1).groups
    assert calls == [("hotpotqa/hotpot_qa", "distractor", "validation")]
    assert group.contexts == ("Quillmark: Quillmark makes kettles. Its works are in Dunmere.\n\nOther: Unrelated.",)
    assert group.questions[0].metadata["supporting_titles"] == ["Quillmark"]


def test_unknown_paragraph_mode_is_a_config_error():
    with pytest.raises(ValueError, match="paragraphs"):
        load_hotpot(path="x.json", paragraphs="gold")
