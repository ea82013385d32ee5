"""``hparams_search=<name>``: an Optuna study (hydra-optuna-sweeper) over a trained method's knobs, maximising the
metric ``train`` returns. Every search config composes; a real 2-trial study on the tiny model (1 step each)
leaves one job per trial whose sampled values are in the declared ranges, and reports the best trial's value."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from hydra import compose, initialize_config_dir

from parallel_decoding.config import CONFIG_DIR, available_options
from tests.helpers import run_module
from tests.training.runs import TINY


@pytest.mark.parametrize("name", available_options("hparams_search"))
def test_search_config_composes_with_optuna_over_method_knobs(name):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert cfg.optimized_metric == "val/f1" and "method.optimizer.lr" in sweeper.params
    assert all(key.split(".")[0] in cfg for key in sweeper.params)  # every knob exists in the train config
    if "lora" in name:
        assert cfg.method.lora.enabled and "method.lora.r" in sweeper.params


@pytest.mark.slow  # ~100 s on the shared 2-core machine (two train jobs in one process): over the 60 s budget
def test_two_trial_study_runs_and_maximises_the_returned_metric(tmp_path):
    sweep = tmp_path / "study"
    result = run_module(
        "parallel_decoding.train", "hparams_search=sft_lora_optuna", *TINY, "trainer.max_steps=1",
        "test=false", "export=false", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}", timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    metrics, samples = [], []
    for job in jobs:
        results = json.loads((job / "results.json").read_text())
        assert results["status"] == "ok" and results["global_step"] == 1 and results["method"] == "sft_lora"
        metrics.append(results["metric"])
        assert results["metric"] == results["val_after"]["val/f1"]
        config = results["config"]
        lr, rank = config["method"]["optimizer"]["lr"], config["method"]["lora"]["r"]
        assert 3e-5 <= lr <= 3e-3 and rank in (4, 8, 16, 32)
        samples.append((lr, rank))
    assert samples[0] != samples[1]  # the sampler chose each trial's values
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert math.isclose(best["best_value"], max(metrics))
    assert set(best["best_params"]) == {"method.optimizer.lr", "method.lora.r", "method.lora.alpha",
                                        "method.lora.dropout"}
