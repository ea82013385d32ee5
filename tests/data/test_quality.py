"""QuALITY loader: articles as groups, options in the text, letter golds, hard_only; release JSONL and hub rows."""

from parallel_decoding.data.loading import load_groups
from parallel_decoding.data.quality import load_quality
from tests.data.dataset_fixtures import write_fixture
from tests.data.hub_rows import serve_hub_rows
from tests.helpers import compose_config


def test_config_composes_and_loads_the_fixture(tmp_path):
    cfg = compose_config("evaluate", ["dataset=quality", f"dataset.path={write_fixture('quality', tmp_path)}"])
    assert cfg.dataset.metrics == "multiple_choice"
    loaded = load_groups(cfg.dataset)
    by_id = {g.id: g for g in loaded.groups}
    assert [q.answers for q in by_id["61001"].questions] == [("B",), ("C",), ("B",)]  # gold_label is 1-based
    first = by_id["61001"].questions[0]
    assert first.text == ("Who kept the log?\nOptions:\nA. Tomas Reed\nB. Orla Venn\nC. The captain\nD. Nobody\n"
                          "Answer with the letter of the correct option.")
    assert by_id["61001"].shared_context.startswith("The lighthouse keeper of Kirwick")
    assert loaded.skipped == {"question without a gold label": 1}


def test_hard_only(tmp_path):
    loaded = load_quality(path=str(write_fixture("quality", tmp_path)), hard_only=True, context_count=None)
    assert [q.id for g in loaded.groups for q in g.questions] == ["61001_q2", "61001_q3"]
    assert loaded.skipped["article without (hard) questions"] == 1


def test_hub_rows_group_by_article(monkeypatch):
    rows = [{"article": "Text one.", "question": "Q1?", "options": ["a", "b", "c", "d"], "answer": 0, "hard": False},
            {"article": "Text two.", "question": "Q2?", "options": ["a", "b", "c", "d"], "answer": 3, "hard": True},
            {"article": "Text one.", "question": "Q3?", "options": ["a", "b", "c", "d"], "answer": 2, "hard": True}]
    serve_hub_rows(monkeypatch, {("emozilla/quality", None, "validation"): rows})
    groups = {g.contexts[0]: g for g in load_quality(context_count=None).groups}
    assert [q.answers for q in groups["Text one."].questions] == [("A",), ("C",)]  # hub answers are 0-based
    assert groups["Text two."].questions[0].answers == ("D",)
