"""Every experiment config runs one training step (on the tiny model), and none ships without that check."""

from __future__ import annotations

import pytest

from parallel_decoding.config import available_options
from parallel_decoding.training.pipeline import run_training
from tests.data.dataset_fixtures import write_fixture
from tests.helpers import SQUAD_HALF_A, compose_config
from tests.training.runs import TINY

ONE_STEP = ["trainer.max_steps=1", "validate_before_fit=false", "test=false", "export=false",
            "data.val_groups=1", "data.test_groups=0", "generation.max_new_tokens=2"]
# How each experiment is shrunk to one cheap step; a new experiment needs an entry (see the meta-test).
# Cross-batch experiments name 8-GPU DDP runs of a 7B model: on the tiny model, one CPU process, 4 mixing heads.
CROSSBATCH = ["hardware=cpu", "method.mixer.num_heads=4"]
SMOKE_OVERRIDES = {
    "squad_sft": [f"dataset.path={SQUAD_HALF_A}", "dataset.context_count=3"],
    "squad_sft_lora": [f"dataset.path={SQUAD_HALF_A}", "dataset.context_count=3"],
    "synthetic_sft": ["dataset.context_count=3"],
    "synthetic_inseq": ["dataset.context_count=3"],
    "synthetic_branch2d": ["dataset.context_count=3"],
    "squad_branch2d": ["hardware=cpu", f"dataset.path={SQUAD_HALF_A}", "dataset.context_count=3"],
    "synthetic_llada": ["dataset.context_count=3"],
    "synthetic_llada_smollm2": ["dataset.context_count=3"],
    "synthetic_crossbatch": [*CROSSBATCH, "dataset.context_count=3"],
    "squad_crossbatch": [*CROSSBATCH, f"dataset.path={SQUAD_HALF_A}", "dataset.context_count=3"],
    "cmb_exam_context_crossbatch": [*CROSSBATCH, "dataset.path={cmb_exam_context}", "dataset.min_questions=1"],
    "triviaqa_sim_crossbatch": [*CROSSBATCH, "dataset.path={triviaqa}", "dataset.min_questions=1"],
}
# Experiments of `evaluate` (multirun sweeps), each run end to end by the test named here.
EVALUATE_EXPERIMENTS = {"group_size_sweep": "tests/reporting/test_report.py"}


def test_every_experiment_has_a_smoke_test():
    assert sorted([*SMOKE_OVERRIDES, *EVALUATE_EXPERIMENTS]) == available_options("experiment")


@pytest.mark.parametrize("name", sorted(SMOKE_OVERRIDES))
def test_experiment_runs_one_step(name, tmp_path):
    if any(str(SQUAD_HALF_A) in o for o in SMOKE_OVERRIDES[name]) and not SQUAD_HALF_A.is_file():
        pytest.skip("the shared SQuAD half-A file is not beside this checkout")
    fixtures = {fixture: write_fixture(fixture, tmp_path) for fixture in ("cmb_exam_context", "triviaqa")}
    smoke = [override.format(**fixtures) for override in SMOKE_OVERRIDES[name]]
    # the experiment first (it picks model and dataset), then the tiny-run overrides on top
    overrides = [f"+experiment={name}", *TINY[:1], *TINY[2:], *ONE_STEP, *smoke]
    cfg = compose_config("train", overrides, output_dir=tmp_path)
    assert cfg.model.name == "tiny_qwen3"
    results = run_training(cfg)
    assert results["status"] == "ok" and results["global_step"] == 1
    assert results["method"] == cfg.method.name and results["dataset"] == cfg.dataset.name
