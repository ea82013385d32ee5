"""Loggers from the ``logger`` group (csv, tensorboard, wandb), and the W&B details a sweep needs.

W&B runs offline when ``WANDB_MODE=offline`` or no credentials exist (no ``WANDB_API_KEY``, no netrc entry), so
a laptop or a cluster node without network still trains. Every job of a multirun is its own W&B run (the task
wrapper finishes it), named from the experiment and the job's overrides and grouped by experiment (and sweep).
The run id is kept in ``<run dir>/wandb_id.txt``: resuming from that run dir's checkpoint continues the same W&B
run; under SLURM the id derives from the job id, so a requeued job continues its run too.
"""

from __future__ import annotations

import csv
import logging
import netrc
import os
import re
import uuid
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from parallel_decoding.utils.secrets import redact

log = logging.getLogger(__name__)

WANDB_ID_FILE = "wandb_id.txt"
WANDB_HOST = "api.wandb.ai"
_SKIPPED_OVERRIDE_KEYS = ("hydra", "logger", "paths", "experiment", "+experiment", "tags", "ckpt_path")


def wandb_credentials_available() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(WANDB_HOST) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_offline() -> bool:
    return os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun", "disabled") \
        or not wandb_credentials_available()


def _hydra_runtime() -> tuple[dict[str, str], list[str], str | None]:
    """(group choices, this job's overrides, sweep dir name in a multirun)."""
    if not HydraConfig.initialized():
        return {}, [], None
    hydra_cfg = HydraConfig.get()
    choices = {k: v for k, v in OmegaConf.to_container(hydra_cfg.runtime.choices).items() if isinstance(v, str)}
    mode = getattr(hydra_cfg.mode, "name", None)
    sweep = Path(str(hydra_cfg.sweep.dir)).name if mode == "MULTIRUN" else None
    return choices, list(hydra_cfg.overrides.task), sweep


def _short_override(override: str) -> str | None:
    key, _, value = override.lstrip("+~").partition("=")
    if key.split(".")[0] in _SKIPPED_OVERRIDE_KEYS or key.startswith("hydra/"):
        return None
    if "/" in value:  # paths: keep the file name
        value = Path(value.strip("'\"")).name
    return f"{key.split('.')[-1]}={value}"


def run_name_and_group(cfg: DictConfig) -> tuple[str, str]:
    choices, overrides, sweep = _hydra_runtime()
    experiment = choices.get("experiment")
    head = cfg.method.name if cfg.get("method") else cfg.get("task_name", "run")  # evaluate has no method
    base = experiment or "-".join(str(x) for x in (head, cfg.model.name, cfg.dataset.name))
    parts = [p for p in (_short_override(o) for o in overrides) if p]
    name = base + (":" + ",".join(parts) if parts else "")
    group = base + (f"/{sweep}" if sweep else "")
    return re.sub(r"\s+", "", name)[:128], group[:128]


def wandb_run_id(output_dir: Path, resume_from: Path | None) -> tuple[str, bool]:
    """(run id, whether it continues an existing W&B run)."""
    for directory in ([resume_from.parent.parent] if resume_from else []) + [output_dir]:
        saved = directory / WANDB_ID_FILE
        if saved.is_file():
            return saved.read_text().strip(), True
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"slurm-{job}" + (f"-{task}" if task else ""), True
    return uuid.uuid4().hex[:8], False


def configure_wandb(cfg: DictConfig, node: DictConfig, resume_from: Path | None = None) -> DictConfig:
    """The ``logger.wandb`` node completed: name, group, a run id kept in the run dir, offline when it must be."""
    node = OmegaConf.create(redact(OmegaConf.to_container(node, resolve=True)))  # no token in names, tags, notes
    name, group = run_name_and_group(cfg)
    output_dir = Path(cfg.paths.output_dir)
    with open_dict(node):
        if not node.get("name"):
            node.name = name
        if not node.get("group"):
            node.group = group
        if not node.get("id"):
            node.id, continues = wandb_run_id(output_dir, resume_from)
            if continues:
                node.resume = "allow"
        if wandb_offline():
            node.offline = True
    if rank_zero_only.rank == 0:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / WANDB_ID_FILE).write_text(str(node.id))
    log.info("W&B run %s (%s), group %s, %s", node.id, node.name, node.group,
             "offline" if node.get("offline") else "online")
    return node


def instantiate_loggers(cfg: DictConfig, resume_from: Path | None = None) -> list[Logger]:
    loggers: list[Logger] = []
    for key, node in (cfg.get("logger") or {}).items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        if node._target_.endswith("WandbLogger"):
            node = configure_wandb(cfg, node, resume_from)
        log.info("Instantiating logger <%s>", node._target_)
        extra = {}
        if node._target_.endswith("ResumableCSVLogger") and resume_from is not None:
            extra["keep_before_step"] = checkpoint_step(resume_from)
        loggers.append(instantiate(node, **extra))
    return loggers


def checkpoint_step(path: Path) -> int:
    """The optimizer step a checkpoint was saved at (read memory-mapped: the weights are not loaded)."""
    return int(torch.load(path, map_location="cpu", mmap=True, weights_only=True).get("global_step", 0))


class ResumableCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger``, except that a resumed run keeps the history of the run it resumes.

    The stock writer deletes an existing ``metrics.csv`` when it starts (Lightning has no append option), so
    ``ckpt_path=last`` lost every step before the checkpoint. Given ``keep_before_step`` (the checkpoint's
    global step), the rows logged before it are kept, and the rows the interrupted run logged after it
    (redone by the resumed run) are dropped; Lightning's writer then appends as usual. Train rows carry the
    step of the batch they follow (``global_step - 1``), so a checkpoint at step G covers the rows below G.
    """

    def __init__(self, *args: Any, keep_before_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keep_before_step = keep_before_step

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is not None:
            return self._experiment
        metrics_file = Path(self.log_dir) / "metrics.csv"
        kept, header = [], []
        if self._keep_before_step is not None and metrics_file.is_file():
            with metrics_file.open(newline="") as handle:
                reader = csv.DictReader(handle)
                header = list(reader.fieldnames or [])
                kept = [row for row in reader if _step(row) < self._keep_before_step]
        writer = super().experiment  # removes the old file
        if header:
            with metrics_file.open("w", newline="") as handle:
                out = csv.DictWriter(handle, fieldnames=header)
                out.writeheader()
                out.writerows(kept)
            writer.metrics_keys = header  # Lightning's writer appends below, widening the header when needed
            log.info("csv logger: kept %d rows of %s from before step %d", len(kept), metrics_file,
                     self._keep_before_step)
        return writer


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


def wandb_loggers(loggers: list[Logger]) -> list[Logger]:
    return [logger for logger in loggers if type(logger).__name__ == "WandbLogger"]


def log_model_artifact(loggers: list[Logger], directory: Path, metadata: dict[str, Any]) -> None:
    """The exported model directory as a W&B ``model`` artifact of this run (referenced in place, not copied:
    the export is final). Offline runs record it and ``wandb sync`` uploads it later."""
    for logger in wandb_loggers(loggers):
        import wandb  # lazy: wandb is imported only when a W&B logger is configured (~2 s)

        run = logger.experiment
        artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=redact(metadata))
        artifact.add_dir(str(directory), policy="immutable")
        run.log_artifact(artifact, aliases=["latest"])
        log.info("W&B: model artifact %s logged from %s", artifact.name, directory)


def log_hyperparameters(loggers: list[Logger], config: dict[str, Any], extra: dict[str, Any]) -> None:
    """The composed (redacted) config plus model sizes, as every logger's hyperparameters."""
    for logger in loggers:
        logger.log_hyperparams({**config, **extra})
