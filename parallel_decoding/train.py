"""Train a method on question groups.

    python -m parallel_decoding.train method=sft model=smollm2_135m dataset=squad \
        dataset.path=../shared/data/squad/dev-v1.1-half-a.json trainer.max_steps=300
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
import sys

import hydra
from omegaconf import DictConfig

from parallel_decoding.config import CONFIG_DIR, ConfigError
from parallel_decoding.models.bundle import ModelUnavailableError
from parallel_decoding.training.pipeline import run_training
from parallel_decoding.training.runtime import hydra_mode, is_ddp_child, task_wrapper

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        results = task_wrapper(run_training)(cfg)
    except (ModelUnavailableError, ConfigError, FileNotFoundError) as err:
        log.error("%s", err)  # already recorded by the task wrapper; a single run exits without a traceback
        sys.exit(2)
    if hydra_mode() != "MULTIRUN" and results.get("status") == "ok" and not is_ddp_child():
        log.info("results written to %s", cfg.paths.output_dir)
    return results.get("metric")


if __name__ == "__main__":
    main()
