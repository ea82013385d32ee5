"""``python -m parallel_decoding.evaluate backend=api`` end to end against a real local server that requires a
key, with the judge on: results written, judge failures counted (the tiny model never writes the judge's JSON),
and the key nowhere in what the run writes or prints."""

from __future__ import annotations

import json

import pytest

from parallel_decoding.backends.api import ApiBackend
from parallel_decoding.backends.base import GenerationSettings
from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.evaluation.recorder import read_jsonl, summarize
from parallel_decoding.serve import ChatCompletionServer
from tests.evaluation.test_evaluate_app import _squad_fixture
from tests.helpers import run_module

SECRET = "sk-e2e-5f1d2c3b4a596877"
KEY_ENV = "PD_E2E_API_KEY"


@pytest.fixture(scope="module")
def api_run(tiny_bundle, tmp_path_factory):
    base = tmp_path_factory.mktemp("api_run")
    squad = _squad_fixture(base / "squad.json")
    run_dir = base / "run"
    backend = HFBackend(tiny_bundle, GenerationSettings())
    with ChatCompletionServer(backend, "tiny_qwen3", api_key=SECRET, max_new_tokens=64) as server:
        result = run_module(
            "parallel_decoding.evaluate", "model=tiny_qwen3", "backend=api", f"backend.base_url={server.url}",
            f"backend.api_key_env={KEY_ENV}", "judge.enabled=true", f"judge.base_url={server.url}",
            f"judge.api_key_env={KEY_ENV}", "judge.attempts=1", "judge.max_tokens=4", "dataset=squad",
            f"dataset.path={squad}", "dataset.min_questions=2", "dataset.max_questions=3",
            "dataset.context_count=null", "generation.max_new_tokens=6", "strategies=[independent,all_in_one]",
            f"hydra.run.dir={run_dir}", env={KEY_ENV: SECRET}, timeout=300,
        )
        answered = server.requests
    assert result.returncode == 0, result.stdout + result.stderr
    return run_dir, result, answered


def test_api_run_answers_every_question_and_counts_judge_failures(api_run):
    run_dir, result, answered = api_run
    results = json.loads((run_dir / "results.json").read_text())
    strategies = results["strategies"]
    assert list(strategies) == ["independent", "all_in_one"]
    for entry in strategies.values():
        assert entry["n_questions"] == 5 and entry["judge_failures"] == 5
        assert {"em", "f1", "lenient", "strict", "judge_mean"} <= set(entry["metrics"])
        assert entry["efficiency"]["generated_tokens"] > 0 and entry["efficiency"]["forward_passes"] == 0
    assert strategies["independent"]["efficiency"]["generate_calls"] == 5
    assert strategies["all_in_one"]["efficiency"]["generate_calls"] == 2
    # warmup 1 + independent 5 + all_in_one 2 + the judge (one attempt per answer) 10
    assert answered == 18
    predictions = read_jsonl(run_dir / "predictions.jsonl")
    assert all(row["judge"] is None and row["metric_set"] == "qa" for row in predictions)
    assert summarize(predictions, read_jsonl(run_dir / "groups.jsonl")) == strategies
    assert results["config"]["backend"]["api_key_env"] == KEY_ENV


def test_the_key_is_never_written_or_printed(api_run):
    run_dir, result, _ = api_run
    written = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"results.json", "predictions.jsonl", "config.yaml", "overrides.yaml"} <= {p.name for p in written}
    for path in written:
        assert SECRET not in path.read_text(errors="ignore"), path
    assert SECRET not in result.stdout + result.stderr
    assert KEY_ENV in (run_dir / ".hydra" / "config.yaml").read_text()  # the name, not the value


def test_a_wrong_key_fails_at_warmup_without_showing_it(tiny_bundle, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-wrong-0000000000")
    with ChatCompletionServer(HFBackend(tiny_bundle, GenerationSettings()), "tiny_qwen3", api_key=SECRET) as server:
        backend = ApiBackend(server.url, "tiny_qwen3", api_key_env=KEY_ENV)
        with pytest.raises(ConfigError, match="HTTP 401: missing or wrong API key") as error:  # one line, exit 2
            backend.warmup()
    assert "sk-wrong" not in str(error.value) and "sk-wrong" not in repr(backend.client)
