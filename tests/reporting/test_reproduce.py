"""Reproduction manifests and ``python -m parallel_decoding.reproduce``: the manifest records what git, the
package metadata and torch say; the comparison flags a value outside the other run's interval; a rerun of a
tiny_qwen3 evaluate run reproduces exactly, and a tampered results.json is named and fails."""

from __future__ import annotations

import importlib.metadata as md
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch
from scipy import stats

from parallel_decoding.metrics.efficiency import EFFICIENCY_FIELDS
from parallel_decoding.config import PROJECT_ROOT, ConfigError
from parallel_decoding.evaluation.recorder import summarize
from parallel_decoding.utils.manifest import (environment_differences, read_manifest, rerun_overrides,
                                                  write_manifest)
from parallel_decoding.reporting.reproduction import (Estimate, compare, group_interval, identical_answers,
                                                      metric_estimates)
from parallel_decoding.reproduce import main as reproduce_main
from tests.helpers import run_module


def test_manifest_records_git_packages_and_torch(tmp_path):
    path = write_manifest(tmp_path, "parallel_decoding.evaluate", overrides=["model=tiny_qwen3", "resume=false",
                                                                              "hydra.run.dir=/x"])
    manifest = json.loads(path.read_text())
    head = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True).stdout.strip())
    assert manifest["git"]["commit"] == head and manifest["git"]["dirty"] == dirty
    env = manifest["environment"]
    assert env["packages"]["transformers"] == md.version("transformers")
    assert env["torch"]["version"] == torch.__version__ and env["torch"]["cuda"] == torch.version.cuda
    assert env["cpu"]["model"] and env["python"]
    assert rerun_overrides(read_manifest(tmp_path)) == ["model=tiny_qwen3"]  # where that run was written: dropped


def test_resume_keeps_the_first_manifest(tmp_path):
    write_manifest(tmp_path, "parallel_decoding.evaluate", overrides=["model=a"])
    write_manifest(tmp_path, "parallel_decoding.evaluate", overrides=["model=a", "resume=true"], resume=True)
    manifest = read_manifest(tmp_path)
    assert manifest["command"]["overrides"] == ["model=a"] and len(manifest["resumed"]) == 1


def test_environment_differences_name_what_changed(tmp_path):
    write_manifest(tmp_path, "parallel_decoding.evaluate", overrides=[])
    recorded = read_manifest(tmp_path)
    current = json.loads(json.dumps(recorded))
    current["environment"]["packages"]["torch"] = "9.9.9"
    current["git"]["commit"] = "0" * 40
    keys = {k for k, _, _ in environment_differences(recorded, current)}
    assert keys == {"environment.packages.torch", "git.commit"}


def test_group_interval_equals_the_percentile_bootstrap_with_one_question_per_group():
    """One question per group: resampling groups is resampling questions, scipy's percentile bootstrap."""
    values = np.random.default_rng(1).random(40)
    low, high = group_interval(values, [str(i) for i in range(40)], method="percentile")
    ref = stats.bootstrap((values,), np.mean, method="percentile", n_resamples=20000,
                          rng=np.random.default_rng(2)).confidence_interval
    assert low == pytest.approx(ref.low, abs=0.02) and high == pytest.approx(ref.high, abs=0.02)
    assert group_interval([1.0, 0.0], ["g", "g"]) is None  # one group: no interval


def test_compare_agrees_within_intervals_and_flags_the_rest():
    reported = {"a/em": Estimate(0.5, 0.3, 0.7), "a/f1": Estimate(0.5, 0.45, 0.55), "a/n": Estimate(4.0),
                "a/gone": Estimate(1.0)}
    reproduced = {"a/em": Estimate(0.6, 0.4, 0.8), "a/f1": Estimate(0.7, 0.65, 0.75), "a/n": Estimate(4.0)}
    verdicts = {r.name: r.verdict for r in compare(reported, reproduced)}
    assert verdicts == {"a/em": "within intervals", "a/f1": "DISAGREE", "a/n": "exact", "a/gone": "MISSING"}
    edited = {"a/em": Estimate(0.6, 0.4, 0.8, recomputed=0.5)}  # results.json says 0.6, its rows 0.5
    assert compare(edited, {"a/em": Estimate(0.6, 0.4, 0.8, recomputed=0.6)})[0].verdict == "INCONSISTENT"


def _fake_run(directory, predictions, manifest_overrides=("model=tiny_qwen3",)):
    """A finished evaluate run dir as the recorder writes it (results.json recomputed from the rows)."""
    directory.mkdir(parents=True)
    groups = {}
    for row in predictions:
        groups.setdefault((row["strategy"], row["group_id"]), 0)
        groups[(row["strategy"], row["group_id"])] += 1
    group_rows = [{"strategy": s, "group_id": g, "n_questions": n,
                   "efficiency": {k: 1 for k in EFFICIENCY_FIELDS}}
                  for (s, g), n in groups.items()]
    (directory / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in predictions))
    (directory / "groups.jsonl").write_text("".join(json.dumps(r) + "\n" for r in group_rows))
    (directory / "results.json").write_text(json.dumps({"strategies": summarize(predictions, group_rows)}))
    write_manifest(directory, "parallel_decoding.evaluate", overrides=list(manifest_overrides))
    return directory


def _rows(answers):
    return [{"strategy": "independent", "group_id": f"g{i // 2}", "question_id": f"q{i}", "prediction": a,
             "raw_output": a, "gold": ["blue"], "format_valid": True} for i, a in enumerate(answers)]


def test_against_a_tampered_results_json_names_the_metric(tmp_path, capsys):
    answers = ["blue", "red", "blue", "blue", "green", "blue"]
    reported = _fake_run(tmp_path / "reported", _rows(answers))
    rerun = _fake_run(tmp_path / "rerun", _rows(answers))
    assert reproduce_main([str(reported), "--against", str(rerun)]) == 0
    assert "identical answers: independent 6/6" in capsys.readouterr().out
    results = json.loads((reported / "results.json").read_text())
    results["strategies"]["independent"]["metrics"]["em"] = 0.95  # the data say 4/6
    (reported / "results.json").write_text(json.dumps(results))
    assert reproduce_main([str(reported), "--against", str(rerun)]) == 1
    err = capsys.readouterr().err
    assert "independent/em (inconsistent)" in err and "independent/f1" not in err


def test_a_different_answer_inside_the_intervals_agrees(tmp_path, capsys):
    reported = _fake_run(tmp_path / "reported", _rows(["blue", "red", "blue", "blue", "green", "blue"]))
    rerun = _fake_run(tmp_path / "rerun", _rows(["blue", "red", "blue", "blue", "green", "red"]))
    assert reproduce_main([str(reported), "--against", str(rerun)]) == 0
    out = capsys.readouterr().out
    assert "within intervals" in out and "identical answers: independent 5/6" in out


def test_no_manifest_or_unfinished_run_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match="no manifest.json"):
        read_manifest(tmp_path)
    write_manifest(tmp_path, "parallel_decoding.evaluate", overrides=[])
    with pytest.raises(ConfigError, match="no results.json"):
        metric_estimates(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        reproduce_main([str(tmp_path)])
    assert exit_info.value.code == 2


@pytest.mark.slow  # two evaluate runs and a tampered copy (minutes on a busy 2-core machine)
def test_evaluate_run_reproduces_exactly_and_a_tampered_one_fails(tmp_path):
    squad = tmp_path / "squad.json"
    context = "The Quillmark company makes blue kettles. It was founded by Ostkir Torfa in Lanford."
    squad.write_text(json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [
        {"context": context, "qas": [
            {"id": f"q{i}", "question": q, "answers": [{"text": a, "answer_start": context.find(a)}]}
            for i, (q, a) in enumerate([("What does Quillmark make?", "blue kettles"),
                                        ("Who founded Quillmark?", "Ostkir Torfa")])]},
        {"context": context + " It is old.", "qas": [
            {"id": f"r{i}", "question": q, "answers": [{"text": a, "answer_start": context.find(a)}]}
            for i, (q, a) in enumerate([("Where was Quillmark founded?", "Lanford"),
                                        ("What colour are the kettles?", "blue")])]}]}]}))
    run = tmp_path / "run"
    first = run_module("parallel_decoding.evaluate", "model=tiny_qwen3", "dataset=squad", f"dataset.path={squad}",
                       "dataset.min_questions=2", "dataset.max_questions=2", "dataset.context_count=null",
                       "generation.max_new_tokens=4", "strategies=[independent,batch_shared]",
                       f"hydra.run.dir={run}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert read_manifest(run)["command"]["overrides"][0] == "model=tiny_qwen3"
    again = run_module("parallel_decoding.reproduce", str(run), "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "identical answers: independent 4/4, batch_shared 4/4" in again.stdout
    assert "DISAGREE" not in again.stdout and "reproduced: " in again.stdout
    tampered = tmp_path / "tampered"
    shutil.copytree(run, tampered)
    results = json.loads((tampered / "results.json").read_text())
    results["strategies"]["batch_shared"]["metrics"]["f1"] = 0.9
    (tampered / "results.json").write_text(json.dumps(results))
    failed = run_module("parallel_decoding.reproduce", str(tampered), "--against", str(tmp_path / "again"))
    assert failed.returncode == 1
    assert "batch_shared/f1 (inconsistent)" in failed.stderr


def test_identical_answers_counts_per_strategy(tmp_path):
    a = _fake_run(tmp_path / "a", _rows(["x", "y"]))
    b = _fake_run(tmp_path / "b", _rows(["x", "z"]))
    assert identical_answers(a, b) == {"independent": (1, 2)}


def _train_run(directory, test_f1, status="ok"):
    directory.mkdir(parents=True)
    (directory / "results.json").write_text(json.dumps({
        "status": status, "val_before": {"val/f1": 0.1}, "val_after": {"val/f1": 0.4, "val/loss": 1.5},
        "test": {"test/f1": test_f1}, "metric": 0.4}))
    write_manifest(directory, "parallel_decoding.train", overrides=["+experiment=synthetic_sft"])
    return directory


def test_train_runs_compare_their_validation_and_test_numbers(tmp_path, capsys):
    reported = _train_run(tmp_path / "a", 0.30)
    assert set(metric_estimates(reported)) == {"val_before/val/f1", "val_after/val/f1", "val_after/val/loss",
                                               "test/test/f1"}
    assert reproduce_main([str(reported), "--against", str(_train_run(tmp_path / "b", 0.30))]) == 0
    assert reproduce_main([str(reported), "--against", str(_train_run(tmp_path / "c", 0.31))]) == 1
    assert "test/test/f1 (disagree)" in capsys.readouterr().err
    assert reproduce_main([str(reported), "--against", str(_train_run(tmp_path / "d", 0.31)), "--atol", "0.02"]) == 0
    with pytest.raises(ConfigError, match="the run failed"):
        metric_estimates(_train_run(tmp_path / "e", 0.3, status="failed"))
