"""A run never ends with exit 0 and nothing computed: settings that cannot work are refused before any work, a
strategy that answered nothing makes the run exit 1 (results still written), and inputs longer than the model's
context are skipped and counted before anything is allocated."""

from __future__ import annotations

import json

import pytest

from parallel_decoding.backends.hf import PromptTooLong
from parallel_decoding.config import ConfigError
from parallel_decoding.utils.cli import find_user_error
from parallel_decoding.evaluate import exit_if_a_strategy_has_no_answers
from parallel_decoding.evaluation.runner import failed_strategy_lines, run_evaluation
from tests.helpers import compose_config, run_module

TINY = ["model=tiny_qwen3", "dataset=synthetic", "dataset.context_count=2", "dataset.min_questions=2",
        "dataset.max_questions=2", "generation.max_new_tokens=2"]


def evaluate(run_dir, *overrides):
    return run_evaluation(compose_config("evaluate", [*TINY, *overrides], output_dir=run_dir), run_dir)


@pytest.mark.parametrize("override, key", [
    ("generation.max_new_tokens=-1", "generation.max_new_tokens"),
    ("generation.max_new_tokens=0", "generation.max_new_tokens"),
    ("generation.max_new_tokens=abc", "generation.max_new_tokens"),
    ("generation.max_new_tokens=2.5", "generation.max_new_tokens"),
    ("generation.temperature=-1", "generation.temperature"),
    ("generation.top_p=1.5", "generation.top_p"),
    ("generation.do_sample=maybe", "generation.do_sample"),
    ("+generation.beams=4", "generation.beams"),
])
def test_generation_settings_that_cannot_work_are_refused_before_any_work(tmp_path, override, key):
    with pytest.raises(ConfigError, match=rf"^{key}\b") as refused:
        evaluate(tmp_path, override)
    assert "\n" not in str(refused.value)
    assert list(tmp_path.iterdir()) == []  # no run files: refused before the run dir was touched


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"hidden_size": 8}', "\xff\xfe garbage"])
def test_a_checkpoint_whose_config_json_is_garbage_is_one_line(tmp_path, content):
    checkpoint = tmp_path / "model"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_bytes(content.encode("latin-1"))
    with pytest.raises(Exception) as raised:
        evaluate(tmp_path / "run", "strategies=[batch,finetuned]", f"checkpoints.finetuned={checkpoint}")
    refused = find_user_error(raised.value)  # what the entry point prints (exit 2), through Hydra's wrapper
    assert isinstance(refused, ConfigError) and "\n" not in str(refused)
    assert str(refused).startswith(f"checkpoints.finetuned={checkpoint}: its config.json is not")
    assert not (tmp_path / "run").exists() or list((tmp_path / "run").iterdir()) == []


@pytest.fixture(scope="module")
def one_strategy_failed(tmp_path_factory):
    """``finetuned`` on a directory with a valid config but no weights: it fails on every group."""
    base = tmp_path_factory.mktemp("failed")
    checkpoint = base / "model"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    run_dir = base / "run"
    return run_dir, evaluate(run_dir, "strategies=[batch,finetuned]", f"checkpoints.finetuned={checkpoint}")


def test_a_strategy_that_failed_on_every_group_is_reported_and_exits_1(one_strategy_failed):
    run_dir, results = one_strategy_failed
    assert results["strategies"]["batch"]["n_groups"] == 2  # the other strategy's results are kept
    assert "finetuned" not in results["strategies"]
    assert results["skipped"]["strategy_failures"] == {"finetuned": 2}
    [line] = failed_strategy_lines(results)
    assert line.startswith("strategy finetuned: failed on all 2 groups it ran (first error: ")
    assert json.loads((run_dir / "results.json").read_text())["skipped"] == results["skipped"]  # written first
    with pytest.raises(SystemExit) as exited:
        exit_if_a_strategy_has_no_answers(results)
    assert exited.value.code == 1


def _squad_with_a_long_paragraph(path, words):
    short = "Kirpelby is a town on the Vell river. Its mayor is Katess Selvin."
    long = " ".join(["Kirpelby lies on the Vell river."] * (words // 6)) + " Its mayor is Katess Selvin."
    qas = lambda p: [{"id": f"{p}1", "question": "Who is the mayor of Kirpelby?",  # noqa: E731
                      "answers": [{"text": "Katess Selvin", "answer_start": 0}]},
                     {"id": f"{p}2", "question": "On which river is Kirpelby?",
                      "answers": [{"text": "the Vell river", "answer_start": 0}]}]
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [
        {"context": short, "qas": qas("s")}, {"context": long, "qas": qas("l")}]}]}))
    return path


def test_inputs_longer_than_the_model_context_are_skipped_and_counted(tmp_path):
    squad = _squad_with_a_long_paragraph(tmp_path / "squad.json", words=6000)  # > tiny_qwen3's 4096 tokens
    results = evaluate(tmp_path / "run", "dataset=squad", f"dataset.path={squad}", "dataset.context_count=null",
                       "strategies=[independent,batch]")
    assert results["skipped"]["too_long"] == {"groups": 1, "questions": 2, "context_limit_tokens": 4096}
    for name in ("independent", "batch"):
        assert results["strategies"][name]["n_groups"] == 1 and results["strategies"][name]["n_questions"] == 2
    assert failed_strategy_lines(results) == []


def test_the_backend_refuses_a_prompt_past_the_context_before_allocating(tmp_path, monkeypatch):
    from parallel_decoding.backends import GenerationSettings, build_backend

    cfg = compose_config("evaluate", TINY, output_dir=tmp_path)
    backend = build_backend(cfg.backend, GenerationSettings(max_new_tokens=8))
    monkeypatch.setattr(backend.model, "generate", lambda **_: pytest.fail("generate must not be reached"))
    with pytest.raises(PromptTooLong, match="4096"):
        backend.generate([[1] * 4090])


@pytest.mark.slow  # three CLI runs (~1 min on a loaded machine)
def test_the_cli_exit_codes_and_lines(tmp_path):
    bad = run_module("parallel_decoding.evaluate", *TINY, "generation.max_new_tokens=abc",
                     f"hydra.run.dir={tmp_path / 'bad'}")
    assert bad.returncode == 2 and "Traceback" not in bad.stdout + bad.stderr
    # the config check before torch is imported names the type (-1 / 0 pass it and meet checked_generation)
    assert "generation.max_new_tokens must be an integer, got 'abc'" in bad.stdout + bad.stderr
    checkpoint = tmp_path / "model"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    failed = run_module("parallel_decoding.evaluate", *TINY, "strategies=[batch,finetuned]",
                        f"checkpoints.finetuned={checkpoint}", f"hydra.run.dir={tmp_path / 'failed'}")
    assert failed.returncode == 1
    assert "strategy finetuned: failed on all 2 groups" in failed.stdout + failed.stderr
    assert (tmp_path / "failed" / "results.json").is_file()
