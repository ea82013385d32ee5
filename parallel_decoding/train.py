"""Train a method on question groups.

    python -m parallel_decoding.train method=sft model=smollm2_135m dataset=squad trainer.max_steps=300
    python -m parallel_decoding.train +experiment=squad_sft_lora              # a saved experiment
    python -m parallel_decoding.train -m method.optimizer.lr=1e-5,3e-5        # a sweep (multirun/)
    python -m parallel_decoding.train hardware=ddp_sim ...                    # 2 CPU processes (gloo)
    python -m parallel_decoding.train ckpt_path=last hydra.run.dir=<run dir>  # resume exactly

Writes ``results.json`` (metrics before/after, test, export dir), ``config_tree.log``, ``splits.json``,
``checkpoints/`` (best and ``last.ckpt``) and ``model/`` (an HF directory for
``evaluate strategies=[finetuned] checkpoints.finetuned=<run dir>/model``) in the Hydra run dir.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from parallel_decoding.config import CONFIG_DIR
from parallel_decoding.utils.cli import guard_run, in_multirun, run_hydra_app
from parallel_decoding.utils.preflight import check_config, check_devices

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    run_dir = cfg.paths.output_dir
    with guard_run(log, task_name=cfg.task_name, run_dir=run_dir,
                   resume_hint=f"ckpt_path=last hydra.run.dir={run_dir}"):
        if not in_multirun():
            check_config(cfg, "train")  # names, types and the step budget, before the heavy imports below
        # lazy: torch & co. (seconds) load only once the config is checked
        from parallel_decoding.training.pipeline import run_training
        from parallel_decoding.utils.runtime import hydra_mode, is_ddp_child, task_wrapper

        def checked_training(cfg: DictConfig) -> dict:
            check_config(cfg, "train")  # in a sweep, a bad job is recorded as failed and the sweep goes on
            check_devices(cfg)
            return run_training(cfg)

        # a single run's error reaches guard_run: one line, exit 2
        results = task_wrapper(checked_training)(cfg)
    if hydra_mode() != "MULTIRUN" and results.get("status") == "ok" and not is_ddp_child():
        log.info("results written to %s", run_dir)
    return results.get("metric")


if __name__ == "__main__":
    run_hydra_app(main)
