"""Run in-sequence parallel decoding on one task and compare it with normal decoding of the same prompt.

    python -m parallel_decoding.inseq inseq_task=retrieval model=smollm2_135m
    python -m parallel_decoding.inseq inseq_task=multidoc_qa inseq_task.loader.count=10
    python -m parallel_decoding.inseq inseq_task=planning inseq.force_outline=true
    python -m parallel_decoding.inseq inseq_task=retrieval inseq_task.loader.path=<dir>/logic_gpa_resume_10.jsonl

What it writes: ``parallel_decoding/evaluation/inseq.py``.
"""

from __future__ import annotations

import json
import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from parallel_decoding.config import CONFIG_DIR
from parallel_decoding.evaluation.inseq import run_inseq
from parallel_decoding.utils.cli import exit_on_user_error, run_hydra_app

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="inseq")
def main(cfg: DictConfig) -> float | None:
    with exit_on_user_error(log):
        summary = run_inseq(cfg, HydraConfig.get().runtime.output_dir)
    figures = {k: summary.get(k) for k in ("examples", "normal", "parallel", "speedup_end_to_end")}
    print(json.dumps(figures, indent=2))
    accuracy = (summary.get("parallel") or {}).get("accuracy")
    return accuracy


if __name__ == "__main__":
    run_hydra_app(main)
