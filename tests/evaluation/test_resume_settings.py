"""``resume=true`` continues a run only with the settings that made its answers; otherwise it is refused before
any work, naming the keys (a changed resume used to mix old and new answers under the new settings' name)."""

from __future__ import annotations

import json

import pytest

from parallel_decoding.config import ConfigError
from parallel_decoding.evaluation.runner import run_evaluation
from parallel_decoding.evaluation.settings import SETTINGS_FILE, answer_settings, differences
from tests.helpers import compose_config, run_module

BASE = ["model=tiny_qwen3", "dataset=synthetic", "dataset.context_count=2", "dataset.min_questions=2",
        "dataset.max_questions=2", "generation.max_new_tokens=2", "strategies=[independent]"]


def evaluate(run_dir, *overrides):
    cfg = compose_config("evaluate", [*BASE, *overrides], output_dir=run_dir)
    return run_evaluation(cfg, run_dir)


def snapshot(run_dir):
    return {p.name: p.read_text() for p in run_dir.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    evaluate(run_dir)
    return run_dir


@pytest.mark.parametrize("override, key", [
    ("generation.max_new_tokens=3", "generation.max_new_tokens"),
    ("dataset.context_count=3", "dataset.context_count"),
    ("dataset.seed=5", "dataset.seed"),
    ("seed=7", "seed"),
    ("generation.do_sample=true", "generation.do_sample"),
    ("model.loader.hidden_size=32", "model.loader.hidden_size"),
    ("strategies=[batch]", "strategies"),  # dropping a strategy: its old rows would stay under the new config
])
def test_a_resume_with_changed_answer_settings_is_refused_before_any_work(finished, override, key):
    before = snapshot(finished)
    with pytest.raises(ConfigError) as refused:
        evaluate(finished, override, "resume=true")
    message = str(refused.value)
    assert "\n" not in message and f"{key} (" in message and "new hydra.run.dir" in message
    assert snapshot(finished) == before  # nothing rewritten, nothing appended


def test_a_resume_with_only_unrelated_settings_changed_goes_on(finished):
    before = json.loads((finished / "results.json").read_text())["strategies"]
    results = evaluate(finished, "resume=true", "judge.timeout_s=5", "paths.cache_dir=/tmp/elsewhere",
                       "tags=[again]", "hardware.devices=1")
    assert results["strategies"] == before


@pytest.mark.slow  # three evaluate runs
def test_adding_a_strategy_on_resume_runs_it_and_is_checked_next_time(tmp_path):
    evaluate(tmp_path)
    results = evaluate(tmp_path, "resume=true", "strategies=[independent,batch]")
    assert set(results["strategies"]) == {"independent", "batch"}
    with pytest.raises(ConfigError, match=r"strategy\.batch\.batch_size"):
        evaluate(tmp_path, "resume=true", "strategies=[independent,batch]", "+strategy.batch.batch_size=1")


def test_a_run_dir_with_results_but_no_settings_record_is_refused(tmp_path):
    (tmp_path / "groups.jsonl").write_text('{"strategy": "independent", "group_id": "g"}\n')  # an older run
    with pytest.raises(ConfigError, match="cannot check"):
        evaluate(tmp_path, "resume=true")


def test_a_run_killed_before_its_first_group_may_resume_with_new_settings(tmp_path):
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"settings": {"seed": 1}}))  # no groups.jsonl yet
    results = evaluate(tmp_path, "resume=true")
    assert results["strategies"]["independent"]["n_groups"] == 2


def test_logger_hydra_and_paths_never_count_as_differences():
    a = answer_settings(compose_config("evaluate", BASE, output_dir="/tmp/a"))
    b = answer_settings(compose_config("evaluate", [*BASE, "logger=wandb"], output_dir="/tmp/b"))
    assert differences(a, b) == []
    c = answer_settings(compose_config("evaluate", [*BASE, "generation.top_p=0.5"], output_dir="/tmp/a"))
    assert differences(a, c) == ["generation.top_p (1.0 -> 0.5)"]


@pytest.mark.slow  # a CLI run
def test_the_cli_refuses_with_one_line_and_exit_2(finished):
    result = run_module("parallel_decoding.evaluate", *BASE, "generation.max_new_tokens=16", "resume=true",
                        f"hydra.run.dir={finished}")
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    [line] = [l for l in output.splitlines() if "answer-affecting" in l]
    assert "generation.max_new_tokens (2 -> 16)" in line
