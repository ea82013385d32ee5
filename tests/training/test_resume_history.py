"""A resumed training run (``ckpt_path=last``) keeps the history of the run it continues: ``csv/metrics.csv``
holds every step, each once, and ``results.json`` keeps ``val_before`` (both used to be lost on resume)."""

from __future__ import annotations

import csv
import json

import pytest

from parallel_decoding.training import pipeline
from tests.training.runs import train
from tests.training.test_train_run import Interrupt, InterruptBefore

# 2 epochs of 4 batches, validation every 3 batches and at the end, last.ckpt every 5 steps: the interrupted
# run stops before step 6, after the checkpoint at step 5 and after logging rows past it (which the resume redoes).
RUNS = ["trainer.max_steps=-1", "trainer.max_epochs=2", "data.batch_size=8", "trainer.val_check_interval=3",
        "callbacks.last_checkpoint.every_n_train_steps=5", "test=false", "export=false", "method.optimizer.lr=1e-3",
        "dataset.context_count=9"]


def rows(run_dir):
    return list(csv.DictReader((run_dir / "csv" / "metrics.csv").open()))


def losses(run_dir):
    return [(int(r["step"]), float(r["train/loss"])) for r in rows(run_dir) if r.get("train/loss")]


def val_steps(run_dir):
    return [int(r["step"]) for r in rows(run_dir) if r.get("val/f1")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume_history")
    reference = train(base / "reference", *RUNS)
    patch = pytest.MonkeyPatch()
    original = pipeline.instantiate_callbacks
    patch.setattr(pipeline, "instantiate_callbacks", lambda node: [*original(node), InterruptBefore(6)])
    with pytest.raises(Interrupt):
        train(base / "resumed", *RUNS)
    patch.undo()
    interrupted_losses = losses(base / "resumed")
    resumed = train(base / "resumed", *RUNS, "ckpt_path=last")
    return base, reference, resumed, interrupted_losses


@pytest.mark.slow  # three short training runs (~2 min on the loaded 2-core machine)
def test_metrics_csv_keeps_the_steps_before_the_checkpoint_once(runs):
    base, reference, resumed, interrupted = runs
    assert resumed["resumed_from"].endswith("last.ckpt") and resumed["global_step"] == reference["global_step"] == 8
    got, want = losses(base / "resumed"), losses(base / "reference")
    assert [s for s, _ in got] == [s for s, _ in want] == list(range(8))  # every step, none twice
    assert got[:5] == [row for row in interrupted if row[0] < 5]  # the interrupted run's own rows, kept
    assert [s for s, _ in interrupted] == list(range(6))  # it had logged a step past the checkpoint
    for (_, a), (_, b) in zip(got, want):
        assert a == pytest.approx(b, abs=1e-4)  # and the resumed steps match an uninterrupted run
    assert val_steps(base / "resumed") == val_steps(base / "reference")


@pytest.mark.slow
def test_val_before_survives_the_resume(runs):
    base, reference, resumed, _ = runs
    assert resumed["val_before"] == reference["val_before"] and "val/f1" in resumed["val_before"]
    assert json.loads((base / "resumed" / "results.json").read_text())["val_before"] == reference["val_before"]


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_train_refuses_generation_settings_that_cannot_work_before_any_work(tmp_path, value):
    from parallel_decoding.config import ConfigError

    with pytest.raises(ConfigError, match="generation.max_new_tokens must be a whole number >= 1, got"):
        train(tmp_path, f"generation.max_new_tokens={value}")
    assert list(tmp_path.iterdir()) == []
