"""A real evaluate sweep over group sizes produces one report whose numbers are the jobs' own."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from parallel_decoding.reporting import report
from parallel_decoding.reporting.collect import SweepRecords, collect_sweep
from parallel_decoding.reporting.report import pareto_front
from tests.helpers import run_module


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("sweep")
    result = run_module(
        "parallel_decoding.evaluate", "-m", "model=tiny_qwen3", "dataset=synthetic", "dataset.context_count=2",
        "dataset.group_size=2,3", "generation.max_new_tokens=3", "strategies=[independent,batch]",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return sweep


def test_sweep_end_writes_table_and_plots(sweep_dir):
    for name in ("report.md", "report.csv", "report_long.csv", "em_vs_latency.png", "scaling.png"):
        assert (sweep_dir / name).is_file(), name
    markdown = (sweep_dir / "report.md").read_text()
    assert "| dataset.group_size | independent | batch |" in markdown


def test_report_cells_are_the_jobs_results(sweep_dir):
    rows = list(csv.DictReader((sweep_dir / "report.csv").open()))
    assert [r["dataset.group_size"] for r in rows] == ["2", "3"]
    for job in ("0", "1"):
        results = json.loads((sweep_dir / job / "results.json").read_text())["strategies"]
        overrides = (sweep_dir / job / ".hydra" / "overrides.yaml").read_text()
        size = "2" if "dataset.group_size=2" in overrides else "3"
        row = next(r for r in rows if r["dataset.group_size"] == size)
        for strategy in ("independent", "batch"):
            assert float(row[f"{strategy}/em"]) == results[strategy]["metrics"]["em"]
            assert int(row[f"{strategy}/prompt_tokens"]) == results[strategy]["efficiency"]["prompt_tokens"]
            assert int(row[f"{strategy}/n_questions"]) == 2 * int(size)


def test_cli_lists_jobs_that_crashed(sweep_dir, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy)
    crashed = copy / "2"
    shutil.copytree(copy / "1" / ".hydra", crashed / ".hydra")
    result = run_module("parallel_decoding.report", str(copy), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "1 job(s) without results: 2" in result.stdout
    assert collect_sweep(copy).missing_jobs == ["2"]
    assert (tmp_path / "out" / "report.md").is_file()


def test_cli_on_a_dir_without_results_is_a_clear_error(tmp_path):
    result = run_module("parallel_decoding.report", str(tmp_path))
    assert result.returncode == 2 and "results.json" in result.stdout


def test_pareto_front_keeps_only_undominated_points():
    points = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.7), (3.0, 0.7), (0.5, 0.1), (4.0, 0.9)]
    assert pareto_front(points) == [(0.5, 0.1), (1.0, 0.5), (2.0, 0.7), (4.0, 0.9)]


def test_accuracy_plot_uses_the_runs_metric_set(tmp_path, monkeypatch):
    """A multiple-choice sweep has no EM: its accuracy is plotted against latency (EM for qa runs, as before)."""
    plotted = []
    monkeypatch.setattr(report, "pareto_front", lambda points: plotted.append(points) or [])
    for key in ("accuracy", "em"):
        records = [{"job": str(i), "strategy": "batch", "backend": "hf", key: value, "latency_s_per_question": i + 1.0}
                   for i, value in enumerate((0.25, 0.75))]
        report._plot_accuracy_vs_latency(SweepRecords(records=records, swept=[]), tmp_path / f"{key}.png")
        assert plotted.pop() == [(1.0, 0.25), (2.0, 0.75)] and (tmp_path / f"{key}.png").is_file()


def test_group_size_sweep_experiment_sweeps_sizes_one_to_five():
    from hydra import compose, initialize_config_dir

    from parallel_decoding.config import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("evaluate", ["+experiment=group_size_sweep"], return_hydra_config=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper.params["dataset.group_size"] == "1,2,3,4,5"
    assert cfg.model.name == "smollm2_135m" and cfg.dataset.name == "squad"
    # half A from the data dir (PARALLEL_DECODING_DATA / paths.data_dir), never a path outside the checkout
    assert cfg.dataset.path is None and list(cfg.dataset.data_files.validation) == ["squad/dev-v1.1-half-a.json"]
