"""``train``'s body: config in, fitted + tested + exported model and ``results.json`` out.

Order: seed; question groups; model (``model.loader``); method (``method``, a ``TrainableMethod``, scoring with the
dataset's metric set); data module (groups -> the method's collator); callbacks (the best checkpoint by
``optimized_metric``, by default the set's primary metric: ``checkpoint_monitor``); loggers; trainer. Then
validate the untouched model (the "before" numbers), fit (resuming from ``ckpt_path`` when given), test with the
best checkpoint, export the model as an HF directory and write ``results.json``. Rank 0 alone writes files;
Lightning's checkpoints are rank 0's too.
"""

from __future__ import annotations

import json
import logging
import math
import zipfile
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, open_dict

from parallel_decoding.backends.base import checked_generation
from parallel_decoding.config import ConfigError
from parallel_decoding.data.loading import load_groups
from parallel_decoding.methods.base import TrainableMethod
from parallel_decoding.methods.datamodule import QuestionGroupDataModule
from parallel_decoding.metrics.metric_sets import METRIC_NAMES, check_metric_set, primary_metric_name
from parallel_decoding.training.callbacks import ResumeRecord
from parallel_decoding.utils.loggers import instantiate_loggers, log_hyperparameters, log_model_artifact
from parallel_decoding.utils.manifest import write_manifest
from parallel_decoding.utils.runtime import (
    ddp_relaunch_as_job,
    is_ddp_child,
    plain_config,
    save_config_tree,
    write_results,
)

log = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.ckpt"
EXPORT_DIR = "model"
SPLITS_FILE = "splits.json"


def resolve_ckpt_path(ckpt_path: str | None, checkpoint_dir: Path) -> Path | None:
    """``last`` (this run dir's last.ckpt), a ``.ckpt`` file, or a run dir / checkpoint dir holding last.ckpt."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        last = checkpoint_dir / LAST_CHECKPOINT
        if last.is_file():
            return check_checkpoint_file(last)
        rank_zero_only(log.warning)("ckpt_path=last but %s does not exist: training from scratch (to resume another "
                                    "run pass hydra.run.dir=<its run dir> or ckpt_path=<its run dir>)", last)
        return None
    path = Path(ckpt_path).expanduser()
    for candidate in (path, path / "checkpoints" / LAST_CHECKPOINT, path / LAST_CHECKPOINT):
        if candidate.is_file():
            return check_checkpoint_file(candidate.resolve())
    raise ConfigError(f"ckpt_path={ckpt_path}: no checkpoint there (a .ckpt file, or a run dir with "
                      f"checkpoints/{LAST_CHECKPOINT})")


def check_checkpoint_file(path: Path) -> Path:
    """A Lightning checkpoint is a zip archive (``torch.save``); a truncated or overwritten one is one line here
    instead of a deserialisation traceback from inside ``fit``."""
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"checkpoint {path} is truncated or corrupted (not a torch checkpoint archive); resume "
                          f"from another checkpoint (ckpt_path=<file.ckpt>) or train from scratch")
    return path


def instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    callbacks = []
    for node in (callbacks_cfg or {}).values():
        if isinstance(node, DictConfig) and "_target_" in node:
            log.info("Instantiating callback <%s>", node._target_)
            callbacks.append(instantiate(node))
    return callbacks


def checkpoint_monitor(optimized_metric: str | None, metric_set: str, dataset: str) -> str | None:
    """What the best checkpoint is chosen by (and a sweep optimises): ``optimized_metric``, or when it is null
    ``val/<primary metric>`` of the dataset's metric set: ``val/f1`` for ``qa`` and ``drop``, ``val/accuracy`` for
    ``multiple_choice``, ``val/rougeL`` for ``generation``. A ``val/<metric>`` of another set is refused now: it is
    never logged, and Lightning would fail at the first validation (``val/f1`` on ``cmb_exam``)."""
    if optimized_metric in (None, "", "null"):
        primary = primary_metric_name(metric_set)
        return f"val/{primary}" if primary else None
    stage, _, name = str(optimized_metric).partition("/")
    scored = {n for names in METRIC_NAMES.values() for n in names}
    if stage in ("val", "test") and name in scored and name not in METRIC_NAMES[metric_set]:
        logged = ", ".join(f"val/{n}" for n in METRIC_NAMES[metric_set]) or "none"
        raise ConfigError(f"optimized_metric={optimized_metric} is never logged: dataset {dataset} is scored with "
                          f"the {metric_set} metric set ({logged}); pick one of those, or optimized_metric=null "
                          f"for its primary metric")
    return str(optimized_metric)


def _metrics(values: dict[str, Any], prefix: str | None = None) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        if prefix and not key.startswith(prefix):
            continue
        out[key] = float(value.item() if isinstance(value, torch.Tensor) else value)
    return out


def _best_checkpoint(callbacks: list[Callback]) -> ModelCheckpoint | None:
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor and callback.best_model_path:
            return callback
    return None


def export_model(cfg: DictConfig, method: TrainableMethod, checkpoint: Path | None, directory: Path,
                 metadata: dict[str, Any]) -> Path:
    """Save ``checkpoint``'s weights (or the in-memory ones when there is none) as an HF directory.

    From a file, a fresh model is built from the config and the checkpoint loaded into it on CPU: this works
    whatever strategy trained it (a sharded FSDP model has no whole copy in memory on rank 0).
    """
    if checkpoint is not None:
        bundle = instantiate(cfg.model.loader, device="cpu")
        fresh: TrainableMethod = instantiate(cfg.method, _partial_=True, _convert_="all")(bundle=bundle)
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
        fresh.load_state_dict(state, strict=fresh.strict_loading)
        method = fresh
        metadata = {**metadata, "checkpoint": str(checkpoint)}
    return method.export(directory, metadata)


def run_training(cfg: DictConfig) -> dict[str, Any]:
    if cfg.get("generation") is not None:  # validation answers with these: a value that cannot work fails now
        checked_generation(cfg.generation, seed=cfg.get("seed") or 0)
    output_dir = Path(cfg.paths.output_dir)
    checkpoint_dir = Path(cfg.checkpoint_dir)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    metric_set, language = cfg.dataset.get("metrics", "qa"), cfg.dataset.get("language", "en")
    check_metric_set(metric_set, language)
    with open_dict(cfg):  # resolved once, so the callbacks, the saved config and results.json agree
        cfg.optimized_metric = checkpoint_monitor(cfg.get("optimized_metric"), metric_set, cfg.dataset.name)
    save_config_tree(cfg, output_dir, print_tree=cfg.get("print_config", True))
    if rank_zero_only.rank == 0 and not is_ddp_child():  # python -m parallel_decoding.reproduce <run dir>
        write_manifest(output_dir, "parallel_decoding.train", resume=cfg.get("ckpt_path") not in (None, "", "null"))
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), checkpoint_dir)

    loaded = load_groups(cfg.dataset)
    if not loaded.groups:
        raise ConfigError(f"dataset {cfg.dataset.name} produced no groups (skipped rows: {loaded.skipped})")
    log.info("Instantiating model <%s>", cfg.model.loader._target_)
    bundle = instantiate(cfg.model.loader)
    log.info("Instantiating method <%s>", cfg.method._target_)
    method: TrainableMethod = instantiate(cfg.method, _partial_=True, _convert_="all")(bundle=bundle)
    method.score_with(metric_set, language)  # validation and test score as evaluate does on this dataset
    log.info("Instantiating datamodule <%s>", cfg.data._target_)
    datamodule: QuestionGroupDataModule = instantiate(cfg.data, _partial_=True)(groups=loaded.groups,
                                                                                collator=method.collator())
    record = ResumeRecord()  # val_before and flushed logs survive a resume (kept in every checkpoint)
    callbacks = [*instantiate_callbacks(cfg.get("callbacks")), record]
    loggers = instantiate_loggers(cfg, resume_from=ckpt_path)
    if not loggers:  # LearningRateMonitor refuses to run without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    log.info("Instantiating trainer <%s>", cfg.trainer._target_)
    trainer: L.Trainer = instantiate(cfg.trainer, _partial_=True)(callbacks=callbacks, logger=loggers or False)

    config = plain_config(cfg)
    n_params = sum(p.numel() for p in method.model.parameters())
    n_trainable = sum(p.numel() for p in method.model.parameters() if p.requires_grad)
    log_hyperparameters(loggers, config, {"model/params": n_params, "model/params_trainable": n_trainable})
    _write_splits(output_dir, datamodule)

    results: dict[str, Any] = {
        "status": "ok", "task_name": cfg.task_name, "method": cfg.method.name, "model": cfg.model.name,
        "dataset": cfg.dataset.name, "optimized_metric": cfg.get("optimized_metric"),
        "resumed_from": str(ckpt_path) if ckpt_path else None, "checkpoint_dir": str(checkpoint_dir),
        "params": n_params, "params_trainable": n_trainable,
    }
    has_val, has_test = bool(datamodule.splits.val), bool(datamodule.splits.test)
    with ddp_relaunch_as_job(output_dir):
        if cfg.train:
            if cfg.get("validate_before_fit") and has_val and ckpt_path is None:
                record.val_before = _metrics(trainer.validate(method, datamodule=datamodule, verbose=False,
                                                              weights_only=True)[0])
            trainer.fit(method, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None,
                        weights_only=True)
            if record.val_before is not None:  # measured now, or restored from the resumed checkpoint
                results["val_before"] = record.val_before
            results["val_after"] = _metrics(trainer.callback_metrics, "val/")
            results["train_loss"] = _metrics(trainer.callback_metrics, "train/")
            if _last_checkpoint_is_stale(cfg, trainer):
                trainer.save_checkpoint(checkpoint_dir / LAST_CHECKPOINT)
        best = _best_checkpoint(callbacks)
        if best is not None:
            results["best"] = {"path": best.best_model_path, "monitor": best.monitor,
                               "score": float(best.best_model_score)}
        if cfg.get("test") and has_test:
            test_ckpt = ("best" if best is not None else None) if cfg.train else (str(ckpt_path) if ckpt_path else None)
            results["test"] = _metrics(trainer.test(method, datamodule=datamodule, ckpt_path=test_ckpt,
                                                    verbose=False, weights_only=True)[0])
    results.update(global_step=trainer.global_step, world_size=trainer.world_size, train_batches_per_rank=method.rank_train_batches,
                   data={"train_groups": len(datamodule.splits.train), "val_groups": len(datamodule.splits.val),
                         "test_groups": len(datamodule.splits.test),
                         "train_examples": len(datamodule.train_examples or []),
                         "skipped_examples": dict(datamodule.collator.skipped),
                         "skipped_dataset_rows": dict(loaded.skipped)})
    metrics = {**results.get("val_after", {}), **results.get("test", {})}
    results["metric"] = metrics.get(cfg.get("optimized_metric"), math.nan)
    if trainer.is_global_zero:
        if cfg.get("export") and cfg.train:
            source = Path(best.best_model_path) if best is not None else _existing(checkpoint_dir / LAST_CHECKPOINT)
            directory = export_model(cfg, method, source, output_dir / EXPORT_DIR,
                                     {"global_step": trainer.global_step, "run_dir": str(output_dir)})
            results["export_dir"] = str(directory)
            log_model_artifact(loggers, directory, {"global_step": trainer.global_step, "method": cfg.method.name})
            log.info("fine-tuned model saved to %s (evaluate: strategies=[finetuned] checkpoints.finetuned=%s)",
                     directory, directory)
        results["config"] = config
        write_results(output_dir, results)
    return results


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def _last_checkpoint_is_stale(cfg: DictConfig, trainer: L.Trainer) -> bool:
    """Whether training ended between two ``last_checkpoint`` saves (so last.ckpt lacks the final steps)."""
    node = (cfg.get("callbacks") or {}).get("last_checkpoint")
    if node is None or trainer.fast_dev_run or trainer.global_step == 0:
        return False
    every = node.get("every_n_train_steps") or 0
    return every <= 0 or trainer.global_step % every != 0


@rank_zero_only
def _write_splits(output_dir: Path, datamodule: QuestionGroupDataModule) -> None:
    """Which groups went where: evidence that no context crosses splits, and the val/test sets for later use."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / SPLITS_FILE).write_text(json.dumps(datamodule.splits.ids(), indent=1))
