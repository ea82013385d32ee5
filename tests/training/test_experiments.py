"""Every experiment config runs one training step (on the tiny model), and none ships without that check.

The train experiments are read from ``conf/experiment/`` and each is shrunk by what its dataset needs (a fixture
in the real format, or a few generated groups), so a new experiment, a new method's included, needs no entry here.
"""

from __future__ import annotations

import pytest

from parallel_decoding.config import PROJECT_ROOT, available_options
from parallel_decoding.training.pipeline import run_training
from tests.data.dataset_fixtures import FIXTURES, write_fixture
from tests.helpers import compose_config
from tests.training.runs import TINY

ONE_STEP = ["trainer.max_steps=1", "validate_before_fit=false", "test=false", "export=false",
            "data.val_groups=1", "data.test_groups=0", "generation.max_new_tokens=2"]
# Experiments name multi-GPU runs of 7B models: the smoke run is one CPU process on the tiny model.
ON_THE_TINY_MODEL = ["hardware=cpu", *TINY[:1], *TINY[2:]]  # TINY but its dataset: the experiment picks that
# Experiments of `evaluate` (multirun sweeps), each run end to end by the test named here.
EVALUATE_EXPERIMENTS = {"group_size_sweep": "tests/reporting/test_report.py"}
TRAIN_EXPERIMENTS = sorted(set(available_options("experiment")) - set(EVALUATE_EXPERIMENTS))


def small_data(dataset, directory) -> list[str]:
    """Overrides that make the experiment's dataset a few groups: a fixture in the dataset's real format (grouped
    as the experiment groups it; SQuAD's too, so no experiment depends on a file outside the checkout), or three
    generated groups."""
    fixture = next((f for f in (f"{dataset.name}_{dataset.get('grouping')}", dataset.name) if f in FIXTURES), None)
    if fixture is not None:
        return [f"dataset.path={write_fixture(fixture, directory)}", "dataset.min_questions=1"]
    return ["dataset.context_count=3"]


def test_every_experiment_has_a_smoke_test():
    """Train experiments all run below; an evaluate experiment is run by the test it names."""
    assert TRAIN_EXPERIMENTS and set(EVALUATE_EXPERIMENTS) <= set(available_options("experiment"))
    for name, test in EVALUATE_EXPERIMENTS.items():
        assert f"experiment={name}" in (PROJECT_ROOT / test).read_text()


@pytest.mark.parametrize("name", TRAIN_EXPERIMENTS)
def test_experiment_runs_one_step(name, tmp_path):
    # the experiment first (it picks model and dataset), then the tiny-run overrides on top
    overrides = [f"+experiment={name}", *ON_THE_TINY_MODEL, *ONE_STEP]
    dataset = compose_config("train", overrides).dataset
    cfg = compose_config("train", [*overrides, *small_data(dataset, tmp_path)], output_dir=tmp_path)
    assert cfg.model.name == "tiny_qwen3"
    results = run_training(cfg)
    assert results["status"] == "ok" and results["global_step"] == 1
    assert results["method"] == cfg.method.name and results["dataset"] == cfg.dataset.name
