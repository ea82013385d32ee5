"""SQuAD loader: local JSON (malformed rows counted), path resolution, the hub path, and the YAML config."""

import json
import os
import sys
import types
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from parallel_decoding.config import ConfigError
from parallel_decoding.data.loading import PROJECT_ROOT, load_groups
from parallel_decoding.data.squad import load_squad, paragraph_id

CONF_DIR = PROJECT_ROOT / "conf"
SHARED_SQUAD = "../shared/data/squad/dev-v1.1-half-a.json"

CONTEXT_A = "Quillmark was founded in 1874 by Vorlan Tess in Dunmere."
CONTEXT_B = "The river Ost runs through Dunmere and Kirwick."


def qa(qid, question, *answers):
    return {"id": qid, "question": question, "answers": [{"text": a, "answer_start": 0} for a in answers]}


SQUAD_FIXTURE = {
    "version": "1.1",
    "data": [
        {
            "title": "Quillmark",
            "paragraphs": [
                {
                    "context": CONTEXT_A,
                    "qas": [
                        qa("a1", "When was Quillmark founded?", "1874", "1874", "in 1874"),
                        qa("a2", "Who founded Quillmark?", "Vorlan Tess"),
                        qa("a3", "Where was Quillmark founded?", "Dunmere"),
                        qa("a4", "  ", "nothing"),  # empty question
                        {"id": "a5", "question": "No answers?", "answers": []},
                        "not a question row",
                        qa("a2", "Duplicate id?", "Vorlan Tess"),
                    ],
                },
                {"qas": [qa("x1", "Where is the context?", "gone")]},  # missing context
                {"context": CONTEXT_B, "qas": [qa("b1", "Which river runs through Dunmere?", "Ost")]},
                {"context": CONTEXT_B, "qas": [{"question": "No id?", "answers": [{"text": "Ost"}]}]},
            ],
        },
        "not an article",
        {"title": "Kirwick", "paragraphs": [{"context": CONTEXT_B, "qas": [
            qa("c1", "Which towns does the Ost run through?", "Dunmere and Kirwick"),
            qa("c2", "What runs through Kirwick?", "The river Ost"),
        ]}]},
    ],
}


@pytest.fixture
def squad_file(tmp_path) -> Path:
    path = tmp_path / "squad-fixture.json"
    path.write_text(json.dumps(SQUAD_FIXTURE), encoding="utf-8")
    return path


def load_all(path, **overrides):
    params = dict(path=str(path), context_count=None, min_questions=1, max_questions=None, seed=13) | overrides
    return load_squad(**params)


def test_local_file_groups_by_paragraph_and_counts_malformed_rows(squad_file):
    loaded = load_all(squad_file)
    by_id = {g.id: g for g in loaded.groups}
    assert set(by_id) == {paragraph_id("Quillmark", 0, CONTEXT_A), paragraph_id("Quillmark", 2, CONTEXT_B),
                          paragraph_id("Kirwick", 0, CONTEXT_B)}
    first = by_id[paragraph_id("Quillmark", 0, CONTEXT_A)]
    assert [q.id for q in first.questions] == ["a1", "a2", "a3"]
    assert first.questions[0].answers == ("1874", "in 1874")  # duplicates collapse, order kept
    assert first.contexts == (CONTEXT_A,) and first.shared_context == CONTEXT_A
    assert first.metadata == {"title": "Quillmark"}
    assert loaded.skipped == {
        "question without text": 1,
        "question without answers": 1,
        "question row is not an object": 1,
        "duplicate question id": 1,
        "paragraph without context": 1,
        "question without an id": 1,
        "paragraph without valid questions": 1,
        "article without a paragraphs list": 1,
    }


def test_min_questions_and_context_count_apply(squad_file):
    loaded = load_all(squad_file, min_questions=2, max_questions=2, context_count=1)
    assert len(loaded.groups) == 1
    assert len(loaded.groups[0].questions) == 2
    assert loaded.skipped["group with fewer than 2 questions"] == 1


def test_relative_path_resolves_against_cwd(squad_file, monkeypatch):
    monkeypatch.chdir(squad_file.parent)
    assert len(load_all(squad_file.name).groups) == 3


def test_relative_path_falls_back_to_project_root(squad_file, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    relative_to_root = os.path.relpath(squad_file, PROJECT_ROOT)
    assert len(load_all(relative_to_root).groups) == 3


def test_missing_file_names_the_paths_tried(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no-such-squad.json") as error:
        load_all("data/no-such-squad.json")
    assert str(tmp_path) in str(error.value) and str(PROJECT_ROOT) in str(error.value)


def fake_datasets(monkeypatch, load_dataset):
    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)


def hub_row(qid, context, question, *answers, title="T"):
    return {"id": qid, "title": title, "context": context, "question": question,
            "answers": {"text": list(answers), "answer_start": [0] * len(answers)}}


def test_hub_rows_group_by_context_in_first_seen_order(monkeypatch):
    rows = [
        hub_row("1", CONTEXT_B, "Which river?", "Ost", title="River"),
        hub_row("2", CONTEXT_A, "Who founded Quillmark?", "Vorlan Tess", title="Company"),
        hub_row("3", CONTEXT_B, "Which towns?", "Dunmere and Kirwick", title="River"),
        hub_row("4", CONTEXT_A, "Unanswerable?"),
        hub_row("5", "", "No context?", "x"),
        "garbage",
    ]
    calls = []
    fake_datasets(monkeypatch, lambda hub_id, split: calls.append((hub_id, split)) or rows)

    loaded = load_squad(context_count=None, min_questions=1, max_questions=None)
    assert calls == [("rajpurkar/squad", "validation")]
    groups = {g.contexts[0]: g for g in loaded.groups}
    assert [q.id for q in groups[CONTEXT_B].questions] == ["1", "3"]
    assert groups[CONTEXT_B].metadata == {"title": "River"}
    assert groups[CONTEXT_B].id.startswith("squad-")
    assert load_squad(context_count=None, min_questions=1, max_questions=None).groups == loaded.groups  # stable ids
    assert loaded.skipped == {"question without answers": 1, "row without context": 1, "row is not an object": 1}


@pytest.mark.parametrize("offline", [None, "HF_HUB_OFFLINE=1"])
def test_hub_failure_explains_the_local_options(monkeypatch, offline):
    from parallel_decoding.utils import hub

    def unreachable(hub_id, split):
        raise ConnectionError("no network")

    monkeypatch.setattr(hub, "hub_offline_reason", lambda: offline)
    fake_datasets(monkeypatch, unreachable)
    with pytest.raises(ConfigError) as error:
        load_squad()
    message = str(error.value)
    assert message.startswith("dataset rajpurkar/squad split 'validation' is not available: ")
    assert "dataset.path=" in message and "PARALLEL_DECODING_DATA" in message and "\n" not in message
    assert ("HF_HUB_OFFLINE=1" in message) if offline else ("ConnectionError: no network" in message)


def squad_yaml_config(**dataset_overrides):
    dataset = OmegaConf.load(CONF_DIR / "dataset" / "squad.yaml")
    for key, value in dataset_overrides.items():
        dataset[key] = value
    return OmegaConf.create({"dataset": dataset})


def test_yaml_instantiates_the_loader(squad_file):
    from hydra.utils import instantiate

    cfg = squad_yaml_config(path=str(squad_file), min_questions=2, max_questions=2, context_count=None)
    assert cfg.dataset.name == "squad"
    loaded = instantiate(cfg.dataset.loader)
    assert sorted(len(g.questions) for g in loaded.groups) == [2, 2]
    assert load_groups(cfg.dataset).groups == loaded.groups


def test_load_groups_accepts_a_dataset_yaml_on_its_own(squad_file):
    dataset = OmegaConf.load(CONF_DIR / "dataset" / "squad.yaml")
    dataset.path = str(squad_file)
    assert len(load_groups(dataset).groups) == 1  # min 3: only the Quillmark paragraph qualifies


@pytest.mark.skipif(not (PROJECT_ROOT / SHARED_SQUAD).is_file(), reason="shared SQuAD half-a file not present")
@pytest.mark.parametrize("cwd", ["project root", "elsewhere"])
def test_shared_dev_half_reads_every_paragraph(cwd, tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT if cwd == "project root" else tmp_path)
    loaded = load_all(SHARED_SQUAD)
    assert len(loaded.groups) == 1065
    assert sum(len(g.questions) for g in loaded.groups) == 5665
    assert loaded.skipped == {}


def test_hydra_composes_the_dataset_group_with_a_path_override(squad_file):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(overrides=["+dataset=squad", f"dataset.path={squad_file}", "dataset.min_questions=1"])
    loaded = load_groups(cfg.dataset)
    assert len(loaded.groups) == 3
