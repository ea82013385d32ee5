"""CMB loaders: CMB-Clin cases, and CMB-Exam multiple choice grouped random / subdomain / context."""

import pytest

from parallel_decoding.data.cmb import load_cmb_clin, load_cmb_exam
from parallel_decoding.data.loading import load_groups
from tests.data.dataset_fixtures import write_fixture
from tests.data.hub_rows import serve_hub_rows
from tests.helpers import compose_config


def test_clin_config_composes_and_loads_the_fixture(tmp_path):
    cfg = compose_config("evaluate", ["dataset=cmb_clin", f"dataset.path={write_fixture('cmb_clin', tmp_path)}"])
    assert (cfg.dataset.metrics, cfg.dataset.language) == ("generation", "zh")
    loaded = load_groups(cfg.dataset)
    by_id = {g.id: g for g in loaded.groups}
    assert set(by_id) == {"cmb-clin-0", "cmb-clin-1"}
    case = by_id["cmb-clin-0"]
    assert case.shared_context.startswith("现病史\n患者，男，65岁")
    assert [q.answers for q in case.questions] == [("右侧腹股沟斜疝。",),
                                                   ("择期行无张力疝修补术，术前控制咳嗽便秘等腹压增高因素。",)]
    assert by_id["cmb-clin-1"].questions[0].answers == ("急性胆囊炎。",)  # "answer" key accepted too
    assert loaded.skipped == {"QA pair without a question": 1, "case without a description": 1}


@pytest.mark.parametrize("grouping,max_questions", [("subdomain", "null"), ("random", "3")])
def test_exam_closed_book_groupings(grouping, max_questions, tmp_path):
    path = write_fixture("cmb_exam", tmp_path)
    cfg = compose_config("evaluate", ["dataset=cmb_exam", f"dataset.path={path}", f"dataset.grouping={grouping}",
                                      "dataset.min_questions=1", f"dataset.max_questions={max_questions}"])
    assert cfg.dataset.metrics == "multiple_choice"
    loaded = load_groups(cfg.dataset)
    questions = [q for g in loaded.groups for q in g.questions]
    assert len(questions) == 5 and len({q.id for q in questions}) == 5
    assert all(g.contexts == () and q.context_index is None for g in loaded.groups for q in g.questions)
    assert loaded.skipped["question whose answer is not an option letter"] == 1
    first = next(q for q in questions if q.text.startswith("高血压的诊断标准"))
    assert first.answers == ("B",) and first.metadata["options"]["B"] == "140/90"
    assert first.text == "高血压的诊断标准是？\n选项:\nA. 120/80\nB. 140/90\nC. 160/100\nD. 180/110\n请只回答正确选项的字母。"
    multi = next(q for q in questions if q.text.startswith("高血压急症"))
    assert multi.answers == ("ACD",)
    if grouping == "subdomain":
        assert sorted(g.metadata["key"] for g in loaded.groups) == ["糖尿病", "高血压"]
    else:
        assert {g.metadata["grouping"] for g in loaded.groups} == {"random"}


def test_exam_context_grouping_shares_the_background(tmp_path):
    path = write_fixture("cmb_exam_context", tmp_path)
    loaded = load_cmb_exam(grouping="context", path=str(path), min_questions=2, context_count=None)
    [group] = loaded.groups
    assert group.shared_context == "患者，男，58岁，突发胸痛2小时，心电图示V1-V4导联ST段抬高。"
    assert [q.answers for q in group.questions] == [("A",), ("B",)]
    assert loaded.skipped == {"question without options": 1, "group with fewer than 2 questions": 1}


def test_exam_reads_the_hub_config_of_its_grouping(monkeypatch):
    from tests.data.dataset_fixtures import CMB_EXAM_CONTEXT, CMB_EXAM_SUBDOMAIN

    calls = serve_hub_rows(monkeypatch, {("fzkuji/CMB-Exam-Grouped", "subdomain", "train"): CMB_EXAM_SUBDOMAIN,
                                         ("fzkuji/CMB-Exam-Grouped", "context", "train"): CMB_EXAM_CONTEXT})
    for grouping in ("random", "subdomain", "context"):
        assert load_cmb_exam(grouping=grouping, min_questions=1).groups
    assert [c[1] for c in calls] == ["subdomain", "subdomain", "context"]
    with pytest.raises(ValueError, match="grouping"):
        load_cmb_exam(grouping="topic")


def test_clin_hub_rows(monkeypatch):
    from tests.data.dataset_fixtures import CMB_CLIN

    serve_hub_rows(monkeypatch, {("FreedomIntelligence/CMB", "CMB-Clin", "test"): CMB_CLIN})
    assert len(load_cmb_clin().groups) == 2
