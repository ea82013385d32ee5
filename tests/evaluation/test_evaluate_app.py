"""``python -m parallel_decoding.evaluate`` end to end on the tiny model: every strategy through the real Hydra
app, results files consistent with each other, malformed rows counted, interrupted runs resumed."""

from __future__ import annotations

import json

import pytest

from parallel_decoding.evaluation.recorder import read_jsonl, summarize
from parallel_decoding.metrics.efficiency import EFFICIENCY_FIELDS
from tests.helpers import run_module

STRATEGIES = ["independent", "sequential", "batch", "all_in_one"]


def _squad_fixture(path):
    """A SQuAD-format file with two good paragraphs and malformed rows that must be skipped and counted."""
    ctx1 = "Kirpelby is a town on the Vell river. Its mayor is Katess Selvin. It was founded in 1842."
    ctx2 = "The Quillmark company makes blue kettles. It was founded by Ostkir Torfa in Lanford."
    data = {"version": "1.1", "data": [{"title": "Fixture", "paragraphs": [
        {"context": ctx1, "qas": [
            {"id": "a1", "question": "Who is the mayor of Kirpelby?", "answers": [{"text": "Katess Selvin", "answer_start": 40}]},
            {"id": "a2", "question": "When was Kirpelby founded?", "answers": [{"text": "1842", "answer_start": 80}]},
            {"id": "a3", "question": "On which river is Kirpelby?", "answers": [{"text": "the Vell river", "answer_start": 22}]},
            {"id": "bad1", "question": "", "answers": [{"text": "x", "answer_start": 0}]},
            {"id": "bad2", "question": "What has no answer?", "answers": []},
        ]},
        {"context": ctx2, "qas": [
            {"id": "b1", "question": "What does Quillmark make?", "answers": [{"text": "blue kettles", "answer_start": 28}]},
            {"id": "b2", "question": "Who founded Quillmark?", "answers": [{"text": "Ostkir Torfa", "answer_start": 60}]},
            "not even a dict",
        ]},
    ]}]}
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("evaluate")
    squad = _squad_fixture(base / "squad.json")
    run_dir = base / "run"
    result = run_module(
        "parallel_decoding.evaluate", "model=tiny_qwen3", "dataset=squad", f"dataset.path={squad}",
        "dataset.min_questions=2", "dataset.max_questions=3", "dataset.context_count=null",
        "generation.max_new_tokens=6", f"strategies=[{','.join(STRATEGIES)}]", f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return run_dir, result


def test_every_strategy_reports_metrics_and_efficiency(finished_run):
    run_dir, result = finished_run
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["strategies"]) == STRATEGIES
    for name, entry in results["strategies"].items():
        assert entry["n_questions"] == 5 and entry["n_groups"] == 2
        assert set(entry["metrics"]) >= {"em", "f1", "lenient", "strict"}
        assert set(entry["efficiency"]) >= set(EFFICIENCY_FIELDS)
        assert entry["efficiency"]["generated_tokens"] > 0 and entry["efficiency"]["latency_s"] > 0
    assert sum(results["skipped"]["dataset_rows"].values()) == 3
    for name in STRATEGIES:
        assert name in result.stdout  # the rich table
    assert "paired vs independent" in result.stdout and "tokens/forward" in result.stdout


def test_batch_equals_independent_in_the_paired_comparison(finished_run):
    run_dir, _ = finished_run
    results = json.loads((run_dir / "results.json").read_text())["strategies"]
    paired = results["batch"]["paired"]  # greedy batch answers are token-identical to independent's
    assert (paired["reference"], paired["n_groups"], paired["n_questions"]) == ("independent", 2, 5)
    assert all(d["diff"] == 0.0 and d["p_value"] == 1.0 for d in paired["metrics"].values())
    assert results["independent"]["parallelism"]["tokens_per_forward"]["mean"] == 1.0  # one row per call
    assert results["batch"]["parallelism"]["tokens_per_forward"]["mean"] > 1.0


def test_results_equal_what_the_row_files_recompute(finished_run):
    run_dir, _ = finished_run
    results = json.loads((run_dir / "results.json").read_text())
    predictions = read_jsonl(run_dir / "predictions.jsonl")
    assert summarize(predictions, read_jsonl(run_dir / "groups.jsonl")) == results["strategies"]
    assert len(predictions) == 5 * len(STRATEGIES)
    for row in predictions:
        assert {"strategy", "group_id", "question_id", "question", "prediction", "gold"} <= set(row)
        assert isinstance(row["gold"], list)


def test_efficiency_reflects_how_each_strategy_decodes(finished_run):
    run_dir, _ = finished_run
    eff = {k: v["efficiency"] for k, v in json.loads((run_dir / "results.json").read_text())["strategies"].items()}
    assert eff["independent"]["generate_calls"] == 5
    assert eff["batch"]["generate_calls"] == 2 and eff["all_in_one"]["generate_calls"] == 2
    # One row per call: every forward pass yields one token of that row.
    assert eff["independent"]["forward_passes"] == eff["independent"]["generated_tokens"]
    # Same prompts, so the same tokens sent; the shared context makes dedup smaller than what was sent.
    assert eff["batch"]["prompt_tokens"] == eff["independent"]["prompt_tokens"]
    assert eff["batch"]["dedup_prompt_tokens"] < eff["batch"]["prompt_tokens"]
    assert eff["batch"]["forward_passes"] < eff["independent"]["forward_passes"]


def test_resume_skips_finished_groups_and_redoes_the_interrupted_one(finished_run, tmp_path):
    run_dir, _ = finished_run
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    groups = read_jsonl(run_dir / "groups.jsonl")
    # Simulate a kill during the last (group, strategy): its predictions were written, its group row was not.
    (resumed / "groups.jsonl").write_text("".join(json.dumps(r) + "\n" for r in groups[:-1]))
    (resumed / "predictions.jsonl").write_text((run_dir / "predictions.jsonl").read_text() + '{"torn": ')
    (resumed / "run_settings.json").write_text((run_dir / "run_settings.json").read_text())  # what resume checks
    squad = run_dir.parent / "squad.json"
    result = run_module(
        "parallel_decoding.evaluate", "model=tiny_qwen3", "dataset=squad", f"dataset.path={squad}",
        "dataset.min_questions=2", "dataset.max_questions=3", "dataset.context_count=null",
        "generation.max_new_tokens=6", f"strategies=[{','.join(STRATEGIES)}]", f"hydra.run.dir={resumed}",
        "resume=true",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 (group, strategy) runs to do" in result.stdout + result.stderr
    original = json.loads((run_dir / "results.json").read_text())["strategies"]
    again = json.loads((resumed / "results.json").read_text())["strategies"]
    for name in STRATEGIES:
        assert again[name]["metrics"] == original[name]["metrics"]
        assert again[name]["n_questions"] == original[name]["n_questions"]
    rows = read_jsonl(resumed / "predictions.jsonl")
    assert len(rows) == len({(r["strategy"], r["question_id"]) for r in rows}) == 5 * len(STRATEGIES)


def test_rerun_into_a_finished_dir_without_resume_refuses(finished_run):
    run_dir, _ = finished_run
    before = (run_dir / "predictions.jsonl").read_text()
    result = run_module("parallel_decoding.evaluate", "model=tiny_qwen3", "dataset=synthetic",
                        "dataset.context_count=1", f"hydra.run.dir={run_dir}")
    assert result.returncode != 0
    assert "resume=true" in result.stdout + result.stderr
    assert (run_dir / "predictions.jsonl").read_text() == before


def test_unknown_strategy_is_a_clear_error(tmp_path):
    result = run_module("parallel_decoding.evaluate", "model=tiny_qwen3", "dataset=synthetic",
                        "strategies=[batch,telepathy]", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "unknown strategy 'telepathy'" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_unknown_reference_strategy_is_a_clear_error(tmp_path):
    result = run_module("parallel_decoding.evaluate", "model=tiny_qwen3", "dataset=synthetic",
                        "strategies=[batch]", "reference_strategy=independent", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "reference_strategy=independent is not one of the strategies run" in result.stdout + result.stderr


@pytest.mark.slow  # two processes, each loading the model (~30 s)
def test_two_process_sharded_run_equals_the_single_process_run(finished_run, tmp_path):
    run_dir, _ = finished_run
    squad = run_dir.parent / "squad.json"
    result = run_module(
        "parallel_decoding.evaluate", "model=tiny_qwen3", "dataset=squad", f"dataset.path={squad}",
        "dataset.min_questions=2", "dataset.max_questions=3", "dataset.context_count=null",
        "generation.max_new_tokens=6", f"strategies=[{','.join(STRATEGIES)}]", f"hydra.run.dir={tmp_path}",
        "hardware=cpu", "hardware.devices=2",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "shared by 2 processes" in result.stdout + result.stderr

    def keyed(path):
        return {(r["strategy"], r["question_id"]): r["raw_output"] for r in read_jsonl(path / "predictions.jsonl")}

    sharded, single = read_jsonl(tmp_path / "predictions.jsonl"), keyed(run_dir)
    assert len(sharded) == len(single)  # no duplicate, no loss
    assert keyed(tmp_path) == single
    assert len(read_jsonl(tmp_path / "groups.jsonl")) == len(read_jsonl(run_dir / "groups.jsonl"))
