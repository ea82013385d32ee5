"""Task generators are deterministic and their gold answers follow from the documents (checked by re-reading
the prompt text, not by trusting the generator); loaders read the reference JSONL formats; scoring is strict."""

from __future__ import annotations

import json
import re

import pytest

from parallel_decoding.config import ConfigError
from parallel_decoding.methods.inseq.tasks import (contains_answer, final_answer, generate_multidoc_qa,
                                                   generate_planning, generate_retrieval, load_multidoc_qa,
                                                   load_planning, load_retrieval, score_example)


def test_retrieval_has_exactly_one_student_in_range():
    examples = generate_retrieval(count=6, num_students=10, seed=3)
    assert examples == generate_retrieval(count=6, num_students=10, seed=3)
    assert examples != generate_retrieval(count=6, num_students=10, seed=4)
    for ex in examples:
        students = re.findall(r"The student named (.+?) is \d+ years old, graduated from .+? with a GPA of (\d+\.\d+)",
                              ex.prompt)
        low, high = map(float, re.search(r"GPA between (\d+\.\d+) and (\d+\.\d+)", ex.prompt).groups())
        inside = [name for name, gpa in students if low <= float(gpa) <= high]
        assert len(students) == 10 and inside == list(ex.gold)
        assert set(ex.distractors) == {n for n, _ in students} - set(ex.gold)


def test_multidoc_gold_follows_from_the_documents():
    for ex in generate_multidoc_qa(count=6, num_documents=6, seed=2):
        passages = dict(re.findall(r"Passage \d+:\n(.+)\n(.+)\n", ex.prompt))
        assert len(passages) == ex.metadata["num_documents"] == 6
        question = ex.metadata["question"]
        films = re.findall(r"(The \w+ \w+)", question)
        director = lambda f: re.search(r"directed by (.+?)\.", passages[f]).group(1)  # noqa: E731
        if ex.metadata["kind"] == "director_birthplace":
            expected = re.search(r"born in (.+?)\.", passages[director(films[0])]).group(1)
        elif ex.metadata["kind"] == "earlier_film":
            expected = min(films, key=lambda f: int(re.search(r"is a (\d{4})", passages[f]).group(1)))
        else:
            expected = min(films, key=lambda f: int(re.search(r"\(born (\d{4})\)", passages[director(f)]).group(1)))
        assert ex.gold == (expected,)


def test_planning_generator_lists_independent_aspects():
    for ex in generate_planning(count=3, num_aspects=4, seed=1):
        assert ex.gold == () and all(a in ex.prompt for a in ex.metadata["aspects"])


def test_loaders_read_the_reference_formats(tmp_path):
    resume = ("Here are 2 students' resumes:\n\nThe student named Ann Lee is 20 years old, graduated from X with a "
              "GPA of 3.10. He/She is interested in Art.\nThe student named Bo Chen is 22 years old, graduated from Y "
              "with a GPA of 1.50. He/She is interested in Music.\n\nQuestion: Which student has a GPA between 3.0 "
              "and 3.2? Please give your final answer (the student's name) in the format of \"name: {answer}\"")
    row = {"prompt": resume, "gold_keys": "Ann Lee", "gold_values": 3.1}
    (tmp_path / "gpa.jsonl").write_text(json.dumps(row) + "\n")
    [ex] = load_retrieval(path=str(tmp_path / "gpa.jsonl"))
    assert ex.gold == ("Ann Lee",) and ex.distractors == ("Bo Chen",)
    rows = [{"input": "Who?", "context": "Passage 1:\nA\ntext", "answers": ["A b"], "_id": "x1"},
            {"input": "Long?", "context": "y" * 500, "answers": ["c"], "_id": "x2"}]
    (tmp_path / "2wiki.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_multidoc_qa(path=str(tmp_path / "2wiki.jsonl"), max_context_chars=100)
    assert [e.id for e in loaded] == ["x1"] and "Question: Who?" in loaded[0].prompt
    (tmp_path / "plan.jsonl").write_text(json.dumps({"task": "分析有机农业的影响与可行性", "answer": "..."}) + "\n")
    [plan] = load_planning(path=str(tmp_path / "plan.jsonl"))
    assert plan.language == "zh" and plan.metadata["reference_answer"] == "..."
    (tmp_path / "bad.jsonl").write_text(json.dumps({"question": "no prompt field"}) + "\n")
    with pytest.raises(ConfigError, match="missing field"):
        load_retrieval(path=str(tmp_path / "bad.jsonl"))


def test_scoring_is_strict():
    gold, others = ("Ann Lee",), ("Bo Chen",)
    assert final_answer("thinking...\nname: {Ann Lee}", "name") == "Ann Lee"
    assert final_answer("no label here\nAnn Lee it is", "name") == "Ann Lee it is"
    assert contains_answer("Ann Lee", gold, others)
    assert not contains_answer("Ann Lee or Bo Chen", gold, others)  # listing every candidate earns nothing
    assert not contains_answer("", gold) and not contains_answer("Annabel Leeds", gold)
    ex = generate_retrieval(count=1, seed=0)[0]
    assert score_example(ex, f"Checked all.\nname: {ex.gold[0]}", "name")["correct"] is True
    assert score_example(generate_planning(count=1)[0], "a plan", "Answer")["correct"] is None
