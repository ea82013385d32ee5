"""Compare strategies on one model and dataset.

    python -m parallel_decoding.evaluate model=smollm2_135m dataset=squad dataset.context_count=3 \
        'strategies=[independent,sequential,batch,all_in_one]'

Writes ``results.json``, ``predictions.jsonl`` and ``groups.jsonl`` in the Hydra run dir; ``resume=true`` with
``hydra.run.dir=<that dir>`` continues an interrupted run. ``logger=wandb`` also logs the run to W&B
(offline without credentials or with ``WANDB_MODE=offline``).
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from parallel_decoding.config import CONFIG_DIR
from parallel_decoding.utils.cli import guard_run, run_hydra_app
from parallel_decoding.utils.preflight import check_config, check_devices

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    run_dir = HydraConfig.get().runtime.output_dir
    with guard_run(log, task_name=cfg.task_name, run_dir=run_dir, resume_hint=f"resume=true hydra.run.dir={run_dir}"):
        check_config(cfg, "evaluate")  # names and types, before the heavy imports below
        # lazy: torch & co. (seconds) load only once the config is checked
        from parallel_decoding.evaluation.runner import failed_strategy_lines, run_evaluation
        from parallel_decoding.evaluation.table import print_results
        from parallel_decoding.metrics.metric_sets import primary_metric
        from parallel_decoding.reporting.wandb_log import log_evaluation

        check_devices(cfg)
        results = run_evaluation(cfg, run_dir)
        if results is None:  # a non-writing rank of a sharded run
            return None
        print_results(results["strategies"])
        log_evaluation(cfg, run_dir, results)
    log.info("results written to %s", run_dir)
    exit_if_a_strategy_has_no_answers(failed_strategy_lines(results))
    first = next(iter(results["strategies"].values()), None)
    return primary_metric(first["metrics"]) if first else None  # f1, or accuracy / rougeL by metric set


def exit_if_a_strategy_has_no_answers(lines: list[str]) -> None:
    """Exit 1 (results already written) when a strategy answered nothing: never a 0 for an empty run. In a
    multirun the line is logged and the sweep goes on to its other jobs."""
    for line in lines:
        log.error("%s", line)
    multirun = HydraConfig.initialized() and getattr(HydraConfig.get().mode, "name", "") == "MULTIRUN"
    if lines and not multirun:
        sys.exit(1)


if __name__ == "__main__":
    run_hydra_app(main)
