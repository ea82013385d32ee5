"""The command-line runner: the real configs compose for every task, a run writes its rows and summary and the
files ``evaluate`` writes (so the report reads it), a rerun resumes, and the Hydra app runs as a user runs it."""

from __future__ import annotations

import json

import pytest
from omegaconf import open_dict

from parallel_decoding.config import ConfigError, available_options
from parallel_decoding.evaluation.recorder import PREDICTIONS_FILE, read_jsonl
from parallel_decoding.evaluation.recorder import RESULTS_FILE as EVALUATE_RESULTS
from parallel_decoding.evaluation.settings import SETTINGS_FILE
from parallel_decoding.evaluation.inseq import RESULTS_FILE, SUMMARY_FILE, run_inseq
from parallel_decoding.reporting.collect import collect_sweep
from parallel_decoding.reporting.report import write_report
from parallel_decoding.utils.cli import find_user_error
from parallel_decoding.utils.manifest import MANIFEST_FILE
from tests.helpers import compose_config, run_module

TINY = ["model=tiny_qwen3", "inseq_task.loader.count=1", "inseq.max_new_tokens=6", "inseq.branch_max_new_tokens=3",
        "inseq.conclusion_max_new_tokens=3"]


@pytest.mark.parametrize("task", available_options("inseq_task"))
def test_every_task_config_composes_and_loads(task, tmp_path):
    from hydra.utils import instantiate

    cfg = compose_config("inseq", [f"inseq_task={task}"], output_dir=tmp_path)
    examples = instantiate(cfg.inseq_task.loader)
    assert cfg.inseq_task.name == task and len(examples) == cfg.inseq_task.loader.count
    assert all(e.task == task for e in examples)


def test_run_writes_rows_and_summary_and_resumes(tmp_path):
    cfg = compose_config("inseq", TINY + ["inseq.force_outline=true", "inseq.max_branches=2",
                                          "inseq.max_title_tokens=2", "inseq.max_new_tokens=16"], output_dir=tmp_path)
    summary = run_inseq(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / RESULTS_FILE).read_text().splitlines()]
    assert [r["id"] for r in rows] == ["retrieval-0-0"]
    assert rows[0]["parallel"]["mode"] == "parallel" and rows[0]["parallel"]["branch_count"] >= 1
    assert rows[0]["normal"]["score"]["correct"] in (True, False)
    assert summary["examples"] == 1 and summary["parallel"]["stage2_tokens_per_s"] > 0
    assert json.loads((tmp_path / SUMMARY_FILE).read_text())["parallel"]["branch_count"] >= 1
    with pytest.raises(ConfigError, match="resume=true"):
        run_inseq(cfg, tmp_path)
    with open_dict(cfg):
        cfg.resume = True
        cfg.inseq_task.loader.count = 2
        cfg.compare_normal = False
    assert run_inseq(cfg, tmp_path)["examples"] == 2
    rows = [json.loads(line) for line in (tmp_path / RESULTS_FILE).read_text().splitlines()]
    assert [r["id"] for r in rows] == ["retrieval-0-0", "retrieval-0-1"] and "normal" not in rows[1]
    strategies = json.loads((tmp_path / EVALUATE_RESULTS).read_text())["strategies"]
    assert {name: entry["n_questions"] for name, entry in strategies.items()} == {"normal": 1, "parallel": 2}
    with open_dict(cfg):
        cfg.inseq_task.loader.path = str(tmp_path / "missing.jsonl")
    with pytest.raises(Exception) as info:  # instantiate wraps it; entry points unwrap it and exit 2
        run_inseq(cfg, tmp_path / "bad")
    assert isinstance(find_user_error(info.value), FileNotFoundError)


@pytest.mark.parametrize("task", ["retrieval", "planning"])
def test_run_writes_what_evaluate_writes_and_the_report_reads_it(task, tmp_path):
    cfg = compose_config("inseq", TINY + [f"inseq_task={task}", "inseq_task.loader.count=2", "inseq.force_outline=true",
                                          "inseq.max_branches=2", "inseq.max_title_tokens=2"], output_dir=tmp_path)
    summary = run_inseq(cfg, tmp_path)
    for name in (PREDICTIONS_FILE, EVALUATE_RESULTS, SETTINGS_FILE, MANIFEST_FILE):
        assert (tmp_path / name).is_file(), name
    rows = read_jsonl(tmp_path / PREDICTIONS_FILE)
    assert [(r["strategy"], r["question_id"]) for r in rows] == [
        (s, f"{task}-0-{i}") for i in range(2) for s in ("normal", "parallel")]
    results = json.loads((tmp_path / EVALUATE_RESULTS).read_text())["strategies"]
    parallel = results["parallel"]
    assert parallel["n_questions"] == 2 and parallel["efficiency"]["forward_passes"] > 0
    assert parallel["efficiency"]["latency_s"] == pytest.approx(summary["parallel"]["time_s"] * 2, abs=2e-4)
    assert parallel["extra"]["branch_count"] == summary["parallel"]["branch_count"] * 2
    assert parallel["paired"]["reference"] == "normal"
    if task == "retrieval":  # scored as evaluate scores short answers; the runner's containment check is extra
        assert all(r["metric_set"] == "qa" and {"em", "f1", "lenient", "strict"} <= r.keys() for r in rows)
        assert set(parallel["metrics"]) == {"em", "f1", "lenient", "strict"}
        assert parallel["extra"]["correct"] == summary["parallel"]["accuracy"] * 2
    else:  # no gold answer: costs only
        assert all(r["metric_set"] == "unscored" and r["gold"] == [] for r in rows)
        assert parallel["metrics"] == {} and "correct" not in parallel["extra"]
    (tmp_path / ".hydra").mkdir()  # what the Hydra app writes beside every run (the collector's job marker)
    sweep = collect_sweep(tmp_path)
    assert not sweep.broken_jobs and [r["strategy"] for r in sweep.records] == ["normal", "parallel"]
    record = sweep.records[1]
    assert record["n_questions"] == 2 and record["latency_s"] == parallel["efficiency"]["latency_s"]
    assert record["em"] == parallel["metrics"].get("em")
    assert "| run | normal | parallel |" in write_report(tmp_path)["markdown"].read_text()


@pytest.mark.slow  # the CLI in a subprocess (~17 s); test_run_writes_rows_and_summary_and_resumes runs the same code in process
def test_cli_runs_as_a_user_runs_it(tmp_path):
    proc = run_module("parallel_decoding.inseq", *TINY, "inseq_task=multidoc_qa",
                      "compare_normal=false", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert summary["task"] == "multidoc_qa" and summary["examples"] == 1 and "normal" not in summary
    records = collect_sweep(tmp_path).records  # the Hydra run dir is a job the report reads
    assert [(r["strategy"], r["n_questions"]) for r in records] == [("parallel", 1)] and records[0]["em"] is not None
