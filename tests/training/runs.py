"""Training runs for tests: the real configs, tiny model and data, in-process or through the real CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from parallel_decoding.training.pipeline import run_training
from tests.helpers import compose_config

# A random 2-layer Qwen3, 8 generated groups, 4-example batches, 4-token answers: seconds per run.
TINY = [
    "model=tiny_qwen3", "dataset=synthetic", "dataset.context_count=8", "generation.max_new_tokens=4",
    "data.batch_size=4", "data.val_groups=1", "data.test_groups=1", "print_config=false",
    "trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false", "trainer.log_every_n_steps=1",
]


def train_config(output_dir: Path, *overrides: str):
    return compose_config("train", [*TINY, *overrides], output_dir=output_dir)


def train(output_dir: Path, *overrides: str) -> dict[str, Any]:
    return run_training(train_config(output_dir, *overrides))


def checkpoint_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def max_weight_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)
