"""``evaluate logger=wandb`` in a real sweep, W&B offline (no mocking): each job's W&B run holds the summary
metrics of its results.json, the per-question table of its predictions.jsonl and an artifact with its files and
HTML views; the sweep's report (tables, plots) is a W&B run of its own; no secret reaches any file."""

from __future__ import annotations

import json

import pytest

from parallel_decoding.evaluation.recorder import read_jsonl
from tests.helpers import run_module
from tests.reporting.wandb_records import manifest, md5_digest, offline_run

# a 2-job evaluate sweep (~25 s); the train-side W&B sweep (tests/training/test_train_cli.py) stays in the default run
pytestmark = pytest.mark.slow

SECRETS = {"WANDB_API_KEY": "secret-wandb-9191", "HF_TOKEN": "hf_secret_9191"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("wandb_sweep")
    env = {**SECRETS, "WANDB_MODE": "offline", "WANDB_DIR": str(root / "wandb_dir"),
           "WANDB_DATA_DIR": str(root / "wandb_data"), "WANDB_CACHE_DIR": str(root / "wandb_cache"),
           "WANDB_CONFIG_DIR": str(root / "wandb_config"), "WANDB_SILENT": "true"}
    result = run_module(
        "parallel_decoding.evaluate", "-m", "model=tiny_qwen3", "dataset=synthetic", "dataset.context_count=2",
        "dataset.group_size=2,3", "generation.max_new_tokens=3", "strategies=[batch,collab_gold]", "logger=wandb",
        "+logger.wandb.notes=${oc.env:HF_TOKEN}", f"hydra.sweep.dir={root / 'multirun'}", env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, result


def test_each_job_logs_its_summary_predictions_and_files(sweep):
    root, _ = sweep
    ids = set()
    for job in ("0", "1"):
        job_dir = root / "multirun" / job
        run = offline_run(job_dir / "wandb")
        ids.add(run.run_id)
        assert run.run_id == (job_dir / "wandb_id.txt").read_text().strip() and run.job_type == "evaluate"
        results = json.loads((job_dir / "results.json").read_text())["strategies"]
        for strategy, entry in results.items():
            for key, value in {**entry["metrics"], **entry["efficiency"]}.items():
                assert run.summary[f"{strategy}/{key}"] == pytest.approx(value), (strategy, key)
        assert run.config["model"]["name"] == "tiny_qwen3" and run.config["logger"]["wandb"]["notes"] == "<redacted>"

        predictions = read_jsonl(job_dir / "predictions.jsonl")
        table = run.table("predictions")
        rows = [dict(zip(table["columns"], row)) for row in table["data"]]
        assert len(rows) == len(predictions) > 0
        for row, expected in zip(rows, predictions):
            assert (row["strategy"], row["question_id"], row["prediction"], row["em"], row["f1"]) == (
                expected["strategy"], expected["question_id"], expected["prediction"], expected["em"], expected["f1"])
            assert row["gold"] == " | ".join(expected["gold"])
        strategies = run.table("strategies")
        assert [r[0] for r in strategies["data"]] == list(results)

        files = manifest(run.artifact("evaluation"))
        views = sorted(p.relative_to(job_dir).as_posix() for p in (job_dir / "dag_views").rglob("*.html"))
        assert views and all(v.startswith("dag_views/collab_gold/") for v in views)
        assert sorted(files) == sorted(["results.json", "predictions.jsonl", "groups.jsonl", *views])
        for name, digest in files.items():  # the artifact holds the run dir's files as they are
            assert digest == md5_digest(job_dir / name), name
    assert len(ids) == 2  # one W&B run per job


def test_the_sweep_report_is_its_own_run_with_tables_and_plots(sweep):
    root, _ = sweep
    sweep_dir = root / "multirun"
    run = offline_run(sweep_dir / "wandb")
    assert run.job_type == "report"
    files = manifest(run.artifact("report"))
    assert {"report.md", "report.csv", "report_long.csv", "em_vs_latency.png", "scaling.png"} <= set(files)
    for name, digest in files.items():
        assert digest == md5_digest(sweep_dir / name), name
    assert run.summary["plots/em_vs_latency"]["_type"] == "image-file"
    assert (run.directory / "files" / run.summary["plots/em_vs_latency"]["path"]).is_file()
    report = run.table("report")
    with (sweep_dir / "report_long.csv").open() as handle:
        assert report["columns"] == handle.readline().strip().split(",")
        assert len(report["data"]) == sum(1 for _ in handle)


def test_no_secret_in_any_file_or_output(sweep):
    root, result = sweep
    needles = [s.encode() for s in SECRETS.values()]
    leaks = [str(p) for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]
    assert leaks == []
    assert not any(s in result.stdout + result.stderr for s in SECRETS.values())
