"""Group and question ids are unique across a dataset and stable across runs, for every loader.

Results rows, resume markers and training splits key on them: two groups under one id made a resume count
unfinished groups as done, and two questions under one id overwrote each other's answers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parallel_decoding.data.fanoutqa import shipped_file
from parallel_decoding.data.loading import load_groups
from parallel_decoding.data import schema
from parallel_decoding.data.schema import LoadedGroups, Question, QuestionGroup
from parallel_decoding.data.squad import load_squad
from tests.data.dataset_fixtures import FIXTURES
from tests.helpers import compose_config


def qa(qid, question, answer):
    return {"id": qid, "question": question, "answers": [{"text": answer, "answer_start": 0}]}


def write_squad(path, articles):
    path.write_text(json.dumps({"version": "1.1", "data": articles}))
    return str(path)


def test_two_squad_articles_with_the_same_title_get_different_stable_ids(tmp_path):
    same_title = [
        {"title": "Dunmere", "paragraphs": [{"context": "Dunmere lies on the Ost.",
                                              "qas": [qa("a1", "What river?", "the Ost")]}]},
        {"title": "Dunmere", "paragraphs": [{"context": "Dunmere has a brewery.",
                                              "qas": [qa("b1", "What does it have?", "a brewery")]}]},
    ]
    path = write_squad(tmp_path / "squad.json", same_title)
    first = load_squad(path=path, context_count=None, min_questions=1, max_questions=None)
    ids = [g.id for g in first.groups]
    assert len(set(ids)) == 2
    again = load_squad(path=path, context_count=None, min_questions=1, max_questions=None, seed=99)
    assert {g.id: g.questions for g in again.groups} == {g.id: g.questions for g in first.groups}


def test_a_question_id_repeated_in_another_paragraph_is_skipped_and_counted(tmp_path):
    articles = [{"title": "T", "paragraphs": [
        {"context": "First paragraph.", "qas": [qa("q1", "One?", "one"), qa("q2", "Two?", "two")]},
        {"context": "Second paragraph.", "qas": [qa("q2", "Two again?", "two"), qa("q3", "Three?", "three")]},
    ]}]
    loaded = load_squad(path=write_squad(tmp_path / "squad.json", articles), context_count=None,
                        min_questions=1, max_questions=None)
    question_ids = [q.id for g in loaded.groups for q in g.questions]
    assert sorted(question_ids) == ["q1", "q2", "q3"]
    assert loaded.skipped == {"question id already used by another group (later one skipped)": 1}


def _doubled(name, content):
    """The same source rows twice: every group and question id repeats."""
    if name == "drop":  # ids are the object's keys: repeat the passages under new section ids
        return {**content, **{f"{k}-copy": v for k, v in content.items()}}
    if isinstance(content, list):
        return content + content
    key = "data" if "data" in content else "Data"
    return {**content, key: content[key] + content[key]}


DATASETS = {name: name for name in FIXTURES if name != "cmb_exam_context"} | {"cmb_exam_context": "cmb_exam"}


@pytest.mark.parametrize("fixture", sorted(DATASETS))
def test_every_loader_keeps_ids_unique_when_source_rows_repeat(fixture, tmp_path):
    filename, content = FIXTURES[fixture]
    extra = ["dataset.grouping=context"] if fixture == "cmb_exam_context" else []

    def load(rows, directory):
        directory.mkdir()
        path = directory / filename
        if filename.endswith(".jsonl"):
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        else:
            path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        cfg = compose_config("evaluate", [f"dataset={DATASETS[fixture]}", f"dataset.path={path}",
                                          "dataset.context_count=null", "dataset.min_questions=1", *extra])
        return load_groups(cfg.dataset)

    once, twice = load(content, tmp_path / "once"), load(_doubled(fixture, content), tmp_path / "twice")
    group_ids = [g.id for g in twice.groups]
    question_ids = [q.id for g in twice.groups for q in g.questions]
    assert len(group_ids) == len(set(group_ids)), group_ids
    assert len(question_ids) == len(set(question_ids)), question_ids
    # Nothing is asked twice and nothing is lost: the same questions as the file without repeats.
    assert set(question_ids) == {q.id for g in once.groups for q in g.questions}
    repeats = {k: v for k, v in twice.skipped.items() if any(w in k for w in ("repeat", "already used", "duplicate"))}
    assert repeats, twice.skipped  # the repeats are counted, not dropped silently


def test_fanoutqa_rows_repeated_keep_unique_ids(tmp_path):
    rows = json.loads(shipped_file("dev").read_text())[:3]
    path = tmp_path / "fanout.json"
    path.write_text(json.dumps(rows + rows))
    cfg = compose_config("evaluate", ["dataset=fanoutqa", f"dataset.path={path}", "dataset.context_count=null"])
    loaded = load_groups(cfg.dataset)
    assert len({g.id for g in loaded.groups}) == len(loaded.groups) == 3
    assert loaded.skipped["group whose every question id was already used"] == 3


def test_a_loader_that_bypasses_selection_still_gets_unique_group_ids(tmp_path, monkeypatch):
    """``load_groups`` is the guarantee for every loader, including generated ones."""
    group = QuestionGroup(id="g", questions=(Question(id="q", text="Q?", answers=("a",)),), contexts=("c",))
    twin = QuestionGroup(id="g", questions=(Question(id="r", text="R?", answers=("b",)),), contexts=("c",))
    import parallel_decoding.data.synthetic as synthetic

    monkeypatch.setattr(synthetic, "load_synthetic", lambda **_: LoadedGroups(groups=[group, twin]))
    cfg = compose_config("evaluate", ["dataset=synthetic"])
    loaded = load_groups(cfg.dataset)
    assert [g.id for g in loaded.groups] == ["g", "g~2"]
    assert loaded.renamed == {"group id shared with an earlier group (renamed with a ~N suffix)": 1}


ids = st.sampled_from(["a", "b", "c", "d"])


@st.composite
def groups(draw):
    out = []
    for _ in range(draw(st.integers(0, 6))):
        qids = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
        questions = tuple(Question(id=q, text=f"{q}?", answers=("x",)) for q in qids)
        edges = tuple((a, b) for a, b in zip(qids, qids[1:]))
        out.append(QuestionGroup(id=draw(st.sampled_from(["g", "h", "g~2"])), questions=questions,
                                 contexts=("c",), dependencies=edges))
    return out


@settings(max_examples=200, deadline=None)
@given(groups())
def test_make_ids_unique_properties(candidates):
    loaded = LoadedGroups(groups=[])
    out = schema.make_ids_unique(candidates, loaded)
    assert len({g.id for g in out}) == len(out)
    question_ids = [q.id for g in out for q in g.questions]
    assert len(question_ids) == len(set(question_ids))
    # Every question is kept or counted; the first group to use an id keeps it; the same input, the same ids.
    assert sum(len(g.questions) for g in candidates) == len(question_ids) + loaded.skipped.get(
        "question id already used by another group (later one skipped)", 0)
    assert [g.id for g in schema.make_ids_unique(candidates, LoadedGroups(groups=[]))] == [g.id for g in out]
    for group in out:
        kept = {q.id for q in group.questions}
        assert all(src in kept and dst in kept for src, dst in group.dependencies)
