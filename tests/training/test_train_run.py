"""``train``'s pipeline end to end on the tiny model, in-process: fast_dev_run of every method, a short real run
(results, checkpoints, export, evaluate on the export) and an interrupted run resumed exactly."""

from __future__ import annotations

import csv
import json

import lightning.pytorch as L
import pytest

from parallel_decoding.config import ConfigError, available_options
from parallel_decoding.evaluation.runner import run_evaluation
from parallel_decoding.methods import read_method_record
from parallel_decoding.training import pipeline
from parallel_decoding.training.pipeline import checkpoint_monitor, run_training
from tests.data.dataset_fixtures import write_fixture
from tests.helpers import compose_config
from tests.training.runs import TINY, checkpoint_weights, max_weight_difference, train, train_config


@pytest.mark.parametrize("method", available_options("method"))
def test_fast_dev_run_of_every_method(method, tmp_path):
    cfg = train_config(tmp_path, f"method={method}", "debug=fdr")
    results = run_training(cfg)
    assert results["status"] == "ok" and results["global_step"] == 1
    assert {"val/em", "val/f1"} <= results["val_before"].keys()
    export = tmp_path / "model"  # no checkpoint under fast_dev_run: the weights in memory are exported
    assert read_method_record(export)["method"] == cfg.method.name and (export / "config.json").is_file()
    if method.startswith("sft"):  # merged weights, plus the peft adapter for LoRA
        assert (export / "model.safetensors").is_file()
        assert (export / "adapter" / "adapter_model.safetensors").is_file() == (method == "sft_lora")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("train")
    results = train(run_dir, "trainer.max_steps=3", "trainer.val_check_interval=2",
                    "callbacks.last_checkpoint.every_n_train_steps=2", "method.optimizer.lr=1e-3")
    return run_dir, results


def test_short_run_writes_results_metrics_and_the_run_files(short_run):
    run_dir, results = short_run
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["status"] == "ok" and saved["global_step"] == 3 and saved["train_batches_per_rank"] == [3]
    for key in ("val_before", "val_after", "test"):
        assert set(saved[key]) >= {f"{key[:4].rstrip('_')}/em", f"{key[:4].rstrip('_')}/f1"}
    assert saved["metric"] == saved["val_after"]["val/f1"]
    assert saved["config"]["method"]["name"] == "sft" and (run_dir / "config_tree.log").is_file()
    rows = list(csv.DictReader((run_dir / "csv" / "metrics.csv").open()))
    val_steps = [int(r["step"]) for r in rows if r.get("val/f1")]
    assert val_steps == [0, 1, 2]  # before training, at batch 2, and the final weights (ValidateFinalWeights)
    assert any(r.get("train/loss") for r in rows)
    assert any(v for r in rows for k, v in r.items() if k.startswith("lr-"))  # LearningRateMonitor
    splits = json.loads((run_dir / "splits.json").read_text())
    assert not set(splits["train"]) & (set(splits["val"]) | set(splits["test"]))


def test_short_run_keeps_best_and_last_checkpoints_and_exports_the_best(short_run):
    run_dir, results = short_run
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(name.startswith("best-") for name in checkpoints)
    assert not any(name.startswith(".") for name in checkpoints)  # no temporary file left behind
    assert results["best"]["path"].endswith(".ckpt") and results["best"]["monitor"] == "val/f1"
    record = read_method_record(run_dir / "model")
    assert record["checkpoint"] == results["best"]["path"] and (run_dir / "model" / "config.json").is_file()


def test_evaluate_runs_the_finetuned_strategy_on_the_export(short_run, tmp_path):
    run_dir, _ = short_run
    cfg = compose_config("evaluate", ["model=tiny_qwen3", "dataset=synthetic", "dataset.context_count=2",
                                      "strategies=[batch,finetuned]", f"checkpoints.finetuned={run_dir / 'model'}",
                                      "generation.max_new_tokens=4"], output_dir=tmp_path)
    results = run_evaluation(cfg, tmp_path)
    assert results["skipped"]["strategy_failures"] == {}
    finetuned = results["strategies"]["finetuned"]
    assert finetuned["n_groups"] == 2 and finetuned["efficiency"]["generated_tokens"] > 0


def test_checkpoint_monitor_follows_the_datasets_metric_set():
    assert checkpoint_monitor(None, "qa", "squad") == "val/f1"
    assert checkpoint_monitor(None, "multiple_choice", "cmb_exam") == "val/accuracy"
    assert checkpoint_monitor(None, "generation", "cmb_clin") == "val/rougeL"
    assert checkpoint_monitor("val/loss", "multiple_choice", "cmb_exam") == "val/loss"  # not a metric-set name
    with pytest.raises(ConfigError, match="val/accuracy, val/strict"):
        checkpoint_monitor("val/f1", "multiple_choice", "cmb_exam")  # never logged: would fail mid-training


def test_multiple_choice_validation_scores_and_selects_by_accuracy(tmp_path):
    """Validation scores with the dataset's metric set, as evaluate does: a cmb_exam checkpoint is chosen by
    answer-letter accuracy, not by token F1."""
    cfg = compose_config("train", [TINY[0], "dataset=cmb_exam", f"dataset.path={write_fixture('cmb_exam', tmp_path)}",
                                   "dataset.min_questions=1", *TINY[3:], "trainer.max_steps=1", "data.test_groups=0",
                                   "export=false"], output_dir=tmp_path)
    results = run_training(cfg)
    assert results["optimized_metric"] == "val/accuracy" and results["best"]["monitor"] == "val/accuracy"
    for key in ("val_before", "val_after"):
        assert set(results[key]) == {"val/accuracy", "val/strict", "val/loss"}
    assert results["metric"] == results["val_after"]["val/accuracy"]


class Interrupt(Exception):
    pass


class InterruptBefore(L.Callback):
    """Stands in for a crash: the run stops right before optimizer step ``step`` (a checkpoint is on disk)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Interrupt


def test_interrupted_run_resumes_exactly_mid_epoch(tmp_path, monkeypatch):
    # 2 epochs of 4 batches; last.ckpt every 5 steps, so the resume point is batch 2 of epoch 2. With
    # max_epochs set, the LR schedule's length comes from the data: the case where the loader used to be built
    # before the resumed position was restored.
    runs = ["trainer.max_steps=-1", "trainer.max_epochs=2", "data.batch_size=8", "trainer.limit_val_batches=0",
            "callbacks.last_checkpoint.every_n_train_steps=5", "validate_before_fit=false", "test=false",
            "export=false", "method.optimizer.lr=1e-3", "dataset.context_count=9"]
    reference = train(tmp_path / "reference", *runs)
    assert reference["global_step"] == 8

    original = pipeline.instantiate_callbacks
    monkeypatch.setattr(pipeline, "instantiate_callbacks", lambda node: [*original(node), InterruptBefore(6)])
    with pytest.raises(Interrupt):
        train(tmp_path / "resumed", *runs)
    monkeypatch.setattr(pipeline, "instantiate_callbacks", original)

    resumed = train(tmp_path / "resumed", *runs, "ckpt_path=last")
    assert resumed["resumed_from"].endswith("last.ckpt") and resumed["global_step"] == 8
    assert max_weight_difference(checkpoint_weights(tmp_path / "reference" / "checkpoints" / "last.ckpt"),
                                 checkpoint_weights(tmp_path / "resumed" / "checkpoints" / "last.ckpt")) <= 1e-5
