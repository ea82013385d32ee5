"""Hydra callback: when a sweep ends, write its report next to its jobs (evaluate sweeps; others have none), and
log it to W&B when the sweep ran with ``logger=wandb``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepReportCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # lazy: Hydra builds its callbacks before every run, and the report's matplotlib costs seconds to import
        from parallel_decoding.reporting.report import write_report
        from parallel_decoding.reporting.wandb_log import log_report

        sweep_dir = Path(config.hydra.sweep.dir)
        if not any(sweep_dir.glob("*/results.json")):
            return
        try:
            written = write_report(sweep_dir)
        except FileNotFoundError:  # results.json without strategies: a train sweep (Optuna's result is its report)
            log.debug("no evaluation results under %s: no sweep report", sweep_dir)
            return
        except Exception:  # a report must never turn a finished sweep into a failed command
            log.exception("could not write the sweep report for %s", sweep_dir)
            return
        log.info("sweep report: %s", ", ".join(str(p) for p in written.values()))
        try:
            log_report(config, sweep_dir)
        except Exception:
            log.exception("could not log the sweep report to W&B")
