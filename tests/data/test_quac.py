"""QuAC loader: dialogue order, chain dependencies, CANNOTANSWER handling; release JSON and hub rows."""

from parallel_decoding.data.loading import load_groups
from parallel_decoding.data.quac import load_quac
from tests.data.dataset_fixtures import write_fixture
from tests.data.hub_rows import serve_hub_rows
from tests.helpers import compose_config


def test_config_composes_and_loads_the_fixture(tmp_path):
    cfg = compose_config("evaluate", ["dataset=quac", f"dataset.path={write_fixture('quac', tmp_path)}",
                                      "dataset.min_questions=1"])
    loaded = load_groups(cfg.dataset)
    assert sorted(g.id for g in loaded.groups) == ["C_dun_1", "C_rane_1"]
    assert loaded.skipped == {"unanswerable turn": 1, "turn without a question": 1, "dialogue without context": 1,
                              "dialogue without an id": 1}


def test_dialogue_order_chain_edges_and_answers(tmp_path):
    loaded = load_quac(path=str(write_fixture("quac", tmp_path)), min_questions=3, max_questions=None,
                       context_count=None)
    [group] = loaded.groups
    assert [q.id for q in group.questions] == ["C_rane_1_q#0", "C_rane_1_q#2", "C_rane_1_q#3"]  # q#1 unanswerable
    assert group.dependencies == (("C_rane_1_q#0", "C_rane_1_q#2"), ("C_rane_1_q#2", "C_rane_1_q#3"))
    assert group.questions[0].answers == ("Dunmere", "in Dunmere")
    assert group.questions[2].answers == ("in 1920",)  # CANNOTANSWER spans fall back to the original answer
    context = group.contexts[0]
    assert context.startswith("Vella Rane — Early life\n\nVella Rane is an invented brewer.\n\nVella Rane was born")
    assert "CANNOTANSWER" not in context


def test_max_questions_keeps_the_first_turns(tmp_path):
    [group] = load_quac(path=str(write_fixture("quac", tmp_path)), min_questions=2, max_questions=2,
                        context_count=None).groups
    assert [q.id for q in group.questions] == ["C_rane_1_q#0", "C_rane_1_q#2"]
    assert group.dependencies == (("C_rane_1_q#0", "C_rane_1_q#2"),)


def test_hub_rows(monkeypatch):
    row = {"dialogue_id": "C_x_0", "wikipedia_page_title": "Ost", "background": "A river.", "section_title": "Course",
           "context": "The Ost rises in Kirwick and ends at Dunmere. CANNOTANSWER", "turn_ids": ["C_x_0_q#0", "C_x_0_q#1"],
           "questions": ["Where does it rise?", "Where does it end?"], "followups": ["y", "n"], "yesnos": ["x", "x"],
           "answers": {"texts": [["in Kirwick", "Kirwick"], ["CANNOTANSWER"]], "answer_starts": [[15, 18], [0]]},
           "orig_answers": {"texts": ["in Kirwick", "at Dunmere"], "answer_starts": [15, 33]}}
    serve_hub_rows(monkeypatch, {("allenai/quac", None, "validation"): [row]})
    [group] = load_quac(min_questions=1).groups
    assert [q.answers for q in group.questions] == [("in Kirwick", "Kirwick"), ("at Dunmere",)]
    assert group.dependencies == (("C_x_0_q#0", "C_x_0_q#1"),)
