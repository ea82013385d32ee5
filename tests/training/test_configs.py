"""Every shipped training config composes and resolves against train.yaml (the configs no code consumes fail
here, not in a user's run); launchers tie SLURM tasks to devices; experiments are added with +experiment."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from parallel_decoding.config import CONFIG_DIR, available_options
from tests.helpers import compose_config

GROUPS = ["method", "trainer", "logger", "callbacks", "hardware", "debug", "experiment"]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in available_options(g)])
def test_every_training_option_composes_and_resolves(group, option, tmp_path):
    prefix = "+" if group == "experiment" else ""
    cfg = compose_config("train", [f"{prefix}{group}={option}"], output_dir=tmp_path)
    OmegaConf.resolve(cfg)
    if group in ("method", "hardware"):
        assert cfg[group].name == option
    assert cfg.trainer.devices == cfg.hardware.devices


def test_experiment_stays_out_of_the_defaults_list():
    defaults = OmegaConf.load(CONFIG_DIR / "train.yaml").defaults
    assert not any("experiment" in (d if isinstance(d, str) else next(iter(d))) for d in defaults)


def test_sft_lora_is_sft_with_adapters(tmp_path):
    cfg = compose_config("train", ["method=sft_lora", "method.lora.r=16"], output_dir=tmp_path)
    assert cfg.method._target_.endswith("SFTMethod") and cfg.method.lora.enabled and cfg.method.lora.r == 16
    assert cfg.method.optimizer.lr > compose_config("train", [], output_dir=tmp_path).method.optimizer.lr


@pytest.mark.parametrize("hardware,devices,tasks", [("ddp", 4, 4), ("cpu", 1, 1), ("ddp_sim", 2, 2)])
def test_slurm_launcher_starts_one_task_per_device(hardware, devices, tasks, tmp_path):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", [f"hardware={hardware}", f"hardware.devices={devices}", "hardware.num_nodes=2",
                                "hydra/launcher=submitit_slurm", f"hydra.sweep.dir={tmp_path}"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher.tasks_per_node == tasks and launcher.nodes == 2
    assert launcher.gpus_per_node == (devices if hardware == "ddp" else None)
    assert launcher._target_.endswith("SlurmLauncher")


@pytest.mark.parametrize("launcher", ["submitit_local", "joblib", "basic"])
def test_other_launchers_compose(launcher, tmp_path):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", [f"hydra/launcher={launcher}", f"hydra.sweep.dir={tmp_path}"],
                      return_hydra_config=True)
    assert "_target_" in cfg.hydra.launcher


def test_strategies_of_the_hardware_group_instantiate(tmp_path):
    ddp = instantiate(compose_config("train", ["hardware=ddp_sim"], output_dir=tmp_path).hardware.strategy)
    assert type(ddp).__name__ == "DDPStrategy" and ddp._process_group_backend == "gloo"
    fsdp = instantiate(compose_config("train", ["hardware=fsdp"], output_dir=tmp_path).hardware.strategy)
    assert type(fsdp).__name__ == "FSDPStrategy"


def test_debug_configs_switch_what_they_promise(tmp_path):
    fdr = compose_config("train", ["debug=fdr"], output_dir=tmp_path)
    assert fdr.trainer.fast_dev_run and fdr.logger is None and fdr.trainer.detect_anomaly
    assert fdr.hardware.name == "cpu"
    overfit = compose_config("train", ["debug=overfit"], output_dir=tmp_path)
    assert overfit.trainer.overfit_batches == 3 and overfit.trainer.limit_val_batches == 0
    evaluate = compose_config("evaluate", ["debug=default"], output_dir=tmp_path)  # still fine for evaluate
    assert evaluate.dataset.context_count == 2
