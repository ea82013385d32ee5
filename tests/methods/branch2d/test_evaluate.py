"""``evaluate 'strategies=[branch2d]' checkpoints.branch2d=<dir>`` through the real Hydra app on the tiny model,
beside the base model's ``batch_shared`` (the one-command reference comparison)."""

from __future__ import annotations

import json

import pytest

from parallel_decoding.methods.branch2d import Branch2DMethod
from parallel_decoding.models import build_tiny_qwen3
from parallel_decoding.training.optim import build_optimizer
from tests.helpers import run_module


@pytest.mark.slow  # train + save + evaluate CLI (~27 s)
def test_evaluate_runs_branch2d_from_a_saved_directory(tmp_path):
    saved = tmp_path / "model"
    method = Branch2DMethod(build_tiny_qwen3(), optimizer=lambda m: build_optimizer(m, lr=1e-3),
                            layout={"mask": "column", "align": "right", "x_stride": 16})
    method.export(saved)
    run_dir = tmp_path / "run"
    result = run_module(
        "parallel_decoding.evaluate", "model=tiny_qwen3", "dataset=synthetic", "dataset.context_count=2",
        "dataset.min_questions=2", "dataset.max_questions=3", "generation.max_new_tokens=4",
        "strategies=[batch_shared,branch2d]", f"checkpoints.branch2d={saved}", f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["strategies"]) == ["batch_shared", "branch2d"]
    entry = results["strategies"]["branch2d"]
    assert entry["n_groups"] == 2 and {"em", "f1"} <= set(entry["metrics"])
    assert entry["extra"]["collapse_groups"] == 2 and -2.0 <= entry["extra"]["collapse_sum"] <= 2.0
