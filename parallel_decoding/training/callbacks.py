"""Lightning pieces the stock ones lack: validation of the final weights, and crash-safe checkpoint files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning.pytorch as L
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


def ends_training(trainer: L.Trainer) -> bool:
    """Whether the batch that just finished is the last one this fit trains on (max_steps or last epoch)."""
    if trainer.max_steps is not None and trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
        return True
    max_epochs = trainer.max_epochs
    last_epoch = max_epochs is not None and max_epochs >= 0 and trainer.current_epoch + 1 >= max_epochs
    return last_epoch and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch


class ValidateFinalWeights(L.Callback):
    """Validate after the last training batch, whatever ``val_check_interval`` says.

    Lightning skips validation when ``max_steps`` ends a run mid-epoch, so the weights a run ends with (and
    the best-checkpoint choice) would go unmeasured. Requesting a stop on the last batch makes the fit loop
    validate before it exits, exactly as early stopping does.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.enable_validation and ends_training(trainer):
            trainer.should_stop = True


class ResumeRecord(L.Callback):
    """What a resumed run needs from the run it continues, kept in every checkpoint.

    ``val_before`` (the untouched model's validation, measured once before the first fit) is restored from the
    checkpoint, so a resumed run's ``results.json`` still has it. Loggers are flushed at every checkpoint, so
    the history a resume keeps (``ResumableCSVLogger``) holds every step up to the checkpoint even after a kill.
    """

    def __init__(self) -> None:
        self.val_before: dict[str, float] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"val_before": self.val_before}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.val_before = state_dict.get("val_before")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        for logger in trainer.loggers:
            logger.save()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a hidden temporary file and renames it into place.

    A run killed while saving (SIGKILL, preemption) then keeps its previous ``last.ckpt`` intact instead of a
    truncated one that ``ckpt_path=last`` would fail to load.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)
