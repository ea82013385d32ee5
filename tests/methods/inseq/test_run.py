"""The command-line runner: the real configs compose for every task, a run writes its rows and summary, a
rerun resumes, and the Hydra app runs as a user runs it."""

from __future__ import annotations

import json

import pytest
from omegaconf import open_dict

from parallel_decoding.config import ConfigError, available_options
from parallel_decoding.utils.cli import find_user_error
from parallel_decoding.methods.inseq.run import RESULTS_FILE, SUMMARY_FILE, run_inseq
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
    with open_dict(cfg):
        cfg.inseq_task.loader.path = str(tmp_path / "missing.jsonl")
    with pytest.raises(Exception) as info:  # instantiate wraps it; entry points unwrap it and exit 2
        run_inseq(cfg, tmp_path / "bad")
    assert isinstance(find_user_error(info.value), FileNotFoundError)


@pytest.mark.slow  # the CLI in a subprocess (~17 s); test_run_writes_rows_and_summary_and_resumes runs the same code in process
def test_cli_runs_as_a_user_runs_it(tmp_path):
    proc = run_module("parallel_decoding.methods.inseq.run", *TINY, "inseq_task=multidoc_qa",
                      "compare_normal=false", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert summary["task"] == "multidoc_qa" and summary["examples"] == 1 and "normal" not in summary
