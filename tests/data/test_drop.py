"""DROP loader: passages as groups; number, multi-span and date answers as gold strings; hub rows."""

from parallel_decoding.data.drop import load_drop
from parallel_decoding.data.loading import load_groups
from parallel_decoding.metrics.drop import drop_scores
from tests.data.dataset_fixtures import write_fixture
from tests.data.hub_rows import serve_hub_rows
from tests.helpers import compose_config


def test_config_composes_and_loads_the_fixture(tmp_path):
    cfg = compose_config("evaluate", ["dataset=drop", f"dataset.path={write_fixture('drop', tmp_path)}"])
    assert cfg.dataset.metrics == "drop"
    loaded = load_groups(cfg.dataset)
    by_id = {g.id: g for g in loaded.groups}
    answers = {q.id: q.answers for q in by_id["nfl_1"].questions}
    assert answers == {"q1": ("14",), "q2": ("23 yards | 41 yards", "23 | 41"), "q3": ("17 August 1995",)}
    assert loaded.skipped == {"question without an answer": 1, "passage without text": 1}
    # A multi-span gold is scored span by span.
    assert drop_scores("23 yards | 41 yards", answers["q2"]) == {"em": 1.0, "f1": 1.0}
    assert drop_scores("41 | 23", answers["q2"]) == {"em": 1.0, "f1": 1.0}


def test_hub_rows(monkeypatch):
    rows = [{"section_id": "s1", "query_id": "a", "passage": "P.", "question": "How many?",
             "answers_spans": {"spans": ["3", "3"], "types": ["number", "number"]}},
            {"section_id": "s1", "query_id": "b", "passage": "P.", "question": "Who?",
             "answers_spans": {"spans": ["Vella", "Vella Rane"], "types": ["span", "span"]}}]
    serve_hub_rows(monkeypatch, {("ucinlp/drop", None, "validation"): rows})
    [group] = load_drop().groups
    assert [q.answers for q in group.questions] == [("3",), ("Vella", "Vella Rane")]
