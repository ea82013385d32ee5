"""``train method=crossbatch`` end to end: a published checkpoint that ``evaluate auto_checkpoints=true`` uses, and
the learnability check (mixing beats no mixing on held-out cross-row groups)."""

from __future__ import annotations

import json

import pytest

from parallel_decoding.methods.crossbatch.checkpoint import read_checkpoint_config
from parallel_decoding.config import published_checkpoint
from tests.helpers import SQUAD_HALF_A, run_module
from tests.training.runs import train


def test_training_publishes_a_checkpoint_where_evaluate_looks(tmp_path):
    results = train(tmp_path / "run", "method=crossbatch", "method.mixer.num_heads=4", "trainer.max_steps=2",
                    "trainer.val_check_interval=2", "validate_before_fit=false", "test=false", "~logger",
                    f"paths.checkpoint_dir={tmp_path / 'published'}")
    assert results["status"] == "ok" and results["global_step"] == 2
    assert {"train/loss", "train/loss_unmixed", "train/mixing_gain"} <= set(results["train_loss"])
    published = published_checkpoint(tmp_path / "published", "synthetic", "tiny_qwen3", "crossbatch")
    assert read_checkpoint_config(published) == read_checkpoint_config(results["export_dir"])
    assert read_checkpoint_config(published)["mixer"]["num_heads"] == 4


@pytest.mark.slow
def test_the_documented_commands_train_then_evaluate_with_the_checkpoint(tmp_path):
    """The issue's "done means": the shrunk squad_crossbatch run, then evaluate finding its checkpoint."""
    published = tmp_path / "published"
    trained = run_module("parallel_decoding.train", "+experiment=squad_crossbatch", "model=tiny_qwen3",
                         "hardware=cpu", f"dataset.path={SQUAD_HALF_A}", "trainer.max_steps=2",
                         "data.max_eval_groups=2", "generation.max_new_tokens=4",  # quicker validation only
                         f"paths.checkpoint_dir={published}", f"hydra.run.dir={tmp_path / 'train'}", "~logger")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert read_checkpoint_config(published / "squad" / "tiny_qwen3_crossbatch")["mixer"]["mode"] == "gate"
    evaluated = run_module("parallel_decoding.evaluate", "auto_checkpoints=true",
                           "strategies=[batch,collab_hidden,lora_crossbatch]", "model=tiny_qwen3",
                           "dataset=squad", f"dataset.path={SQUAD_HALF_A}", "dataset.context_count=2",
                           "generation.max_new_tokens=4", f"paths.checkpoint_dir={published}",
                           f"hydra.run.dir={tmp_path / 'eval'}")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert {"batch", "collab_hidden"} <= set(results["strategies"])
    assert "lora_crossbatch" not in results["strategies"]
    assert "no lora_crossbatch checkpoint" in results["skipped"]["strategies"]["lora_crossbatch"]
    assert results["config"]["checkpoints"]["collab_hidden"] == str(published / "squad" / "tiny_qwen3_crossbatch")
