"""The seam every trained method plugs into: a ``TrainableMethod`` LightningModule.

A method is one folder (``parallel_decoding/methods/<name>/``) plus ``conf/method/<name>.yaml`` whose
``_target_`` names its ``TrainableMethod`` subclass. The subclass declares:

- ``collator()`` -> ``MethodCollator``: which training examples a question group yields and how they batch
  (the data module calls it; the split by group and the exact-resume sampling are shared);
- ``training_loss(batch)`` -> ``(loss, n_targets)``: its objective on one batch;
- ``eval_strategy`` (config): the name of the ``conf/strategy`` strategy that answers with this method's
  weights. Validation and test run exactly that strategy on the current weights and score its answers with the
  dataset's metric set (``score_with``; ``metrics/metric_sets.py``), so ``val/<metric>`` (``val/em``,
  ``val/f1`` for ``qa``; ``val/accuracy`` for ``multiple_choice``; ...) are the numbers ``evaluate`` reports
  for the saved model;
- optionally ``prepare_model(model)`` (wrap or patch the loaded model, e.g. LoRA), ``export_model()`` /
  ``export_extras(directory)`` (what ``save_pretrained`` writes), and ``load_exported(directory, ...)``
  (how ``evaluate`` loads it back; the default reads a plain HF directory).

Shared here: optimizer and scheduler from ``_partial_`` configs, the metric set's means synced across ranks, RNG
state in checkpoints (exact resume with dropout), frozen weights left out of checkpoints, and ``export`` (an HF
directory plus ``method.yaml``). ``load_trained(directory)`` reads ``method.yaml`` and dispatches to the
method's ``load_exported``: that is how the ``finetuned`` strategy (and later methods' strategies) load weights.

``FinetuningMethod`` adds what the methods that train the loaded model's own weights share (sft, branch2d): full
or LoRA fine-tuning (``method.lora.*``), gradient checkpointing, and an export of merged weights plus the adapter.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
import yaml
from hydra.utils import instantiate
from lightning.pytorch.strategies import FSDPStrategy
from torch import nn
from torchmetrics import MeanMetric

from parallel_decoding.backends.base import GenerationSettings
from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.methods.datamodule import EvalBatch, MethodCollator, planned_optimizer_steps
from parallel_decoding.metrics.metric_sets import METRIC_NAMES, check_metric_set, primary_metric_name, score_question
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.models.pretrained import load_pretrained
from parallel_decoding.strategies import Strategy, strategy_config

log = logging.getLogger(__name__)

METHOD_FILE = "method.yaml"  # written beside the HF files of every exported model
ADAPTER_DIR = "adapter"  # where a LoRA method's export keeps the peft adapter, beside the merged weights


class TrainableMethod(L.LightningModule, ABC):
    def __init__(
        self,
        bundle: ModelBundle,
        name: str,
        optimizer: Callable[[nn.Module], torch.optim.Optimizer],
        scheduler: Callable[..., dict] | None = None,
        generation: dict[str, Any] | None = None,
        eval_strategy: str = "batch",
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.tokenizer = bundle.tokenizer
        self.base_model_name = bundle.name
        self.enable_thinking = bundle.enable_thinking
        self.model = self.prepare_model(bundle.model)
        self.model.train()  # loaders hand models over in eval mode; Lightning keeps the mode it finds
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.generation = GenerationSettings(**(generation or {}))
        self.eval_strategy_name = eval_strategy
        self.method_config = dict(config or {})  # recorded in method.yaml
        self.score_with("qa")  # the training pipeline sets the dataset's metric set
        self.train_batches = 0  # this rank's count of training batches
        self.rank_train_batches: list[int] = []  # every rank's count, gathered when training ends
        self._backend: HFBackend | None = None
        self._strategy: Strategy | None = None
        self._rng_to_restore: torch.Tensor | None = None
        self.strict_loading = all(p.requires_grad for p in self.model.parameters())

    # -- what a method declares ------------------------------------------------------------------------------
    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Wrap or patch the loaded model before training (LoRA adapters, position patches...)."""
        return model

    @abstractmethod
    def collator(self) -> MethodCollator:
        """Turns the datamodule's question groups into this method's training batches."""

    @abstractmethod
    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Mean loss over the batch's targets, and how many targets it averaged."""

    # -- training --------------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, n_targets = self.training_loss(batch)
        self.train_batches += 1
        self.log("train/loss", loss, prog_bar=True, batch_size=max(1, n_targets))
        return loss

    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(self.model)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        total = max(1, planned_optimizer_steps(self.trainer))
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer, total_steps=total)}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        if gradient_clip_val and isinstance(self.trainer.strategy, FSDPStrategy) \
                and gradient_clip_algorithm in (None, "norm"):
            # clip_grad_norm_ of the sharded root computes the norm across shards; Lightning refuses norm clipping
            # under FSDP because the precision plugin has no handle on that root
            self.trainer.strategy.model.clip_grad_norm_(gradient_clip_val)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    # -- validation and test: the method's strategy on the current weights -----------------------------------
    def answering_backend(self) -> HFBackend:
        if self._backend is None:
            bundle = ModelBundle(model=self.model, tokenizer=self.tokenizer, name=self.base_model_name,
                                 enable_thinking=self.enable_thinking)
            self._backend = HFBackend(bundle, self.generation)
            self._strategy = instantiate(strategy_config(self.eval_strategy_name), name=self.eval_strategy_name)
        return self._backend

    def score_with(self, metric_set: str, language: str = "en") -> None:
        """Score validation and test answers with ``metric_set`` (the dataset's ``dataset.metrics``), exactly as
        ``evaluate``'s recorder scores them: ``val/<metric>`` for every metric of the set, plus ``val/loss``."""
        check_metric_set(metric_set, language)
        self.metric_set, self.language = metric_set, language
        self.metric_names = METRIC_NAMES[metric_set]
        self.metrics = nn.ModuleDict({f"{stage}_{key}": MeanMetric() for stage in ("val", "test")
                                      for key in (*self.metric_names, "loss")})

    def validation_step(self, batch: EvalBatch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: EvalBatch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: EvalBatch, stage: str) -> None:
        backend = self.answering_backend()
        collator = self.collator()
        for group, counted in zip(batch.groups, batch.counted):
            outcome = self._strategy.run(group, backend)  # padding groups too: generation may be collective
            if not counted:
                continue
            questions = {q.id: q for q in group.questions}
            for prediction in outcome.predictions:
                scores = score_question(self.metric_set, questions[prediction.question_id], prediction.prediction,
                                        prediction.format_valid, language=self.language)
                for key in self.metric_names:
                    self.metrics[f"{stage}_{key}"].update(scores[key])
            examples = collator.examples(group)
            if examples:
                loss, n_targets = self.training_loss(self._to_device(collator(examples)))
                self.metrics[f"{stage}_loss"].update(loss.detach().float(), weight=n_targets)
        shown = {"em", primary_metric_name(self.metric_set)}  # the progress bar keeps to the headline figures
        for key in (*self.metric_names, "loss"):
            self.log(f"{stage}/{key}", self.metrics[f"{stage}_{key}"], on_step=False, on_epoch=True,
                     prog_bar=key in shown)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    # -- checkpoints -----------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng"] = {"torch": torch.get_rng_state(), "rank": self.global_rank}
        if torch.cuda.is_available() and self.device.type == "cuda":
            checkpoint["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        if not self.strict_loading:  # frozen base weights come from the model config, not the checkpoint
            frozen = {f"model.{n}" for n, p in self.model.named_parameters(remove_duplicate=False)
                      if not p.requires_grad}  # every name of a tied weight (embeddings = LM head)
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("rng")
        # Only rank 0's state is saved: other ranks of a DDP run keep their own streams.
        if rng is not None and rng.get("rank", 0) == self.global_rank:
            self._rng_to_restore = rng
        else:
            self._rng_to_restore = None

    def on_train_start(self) -> None:
        # Restored here, not in on_load_checkpoint: nothing may draw random numbers between this and the first
        # resumed step, exactly as between the checkpoint and the next step of the uninterrupted run.
        if self._rng_to_restore is not None:
            torch.set_rng_state(self._rng_to_restore["torch"])
            if "cuda" in self._rng_to_restore and self.device.type == "cuda":
                torch.cuda.set_rng_state(self._rng_to_restore["cuda"], self.device)
            self._rng_to_restore = None

    def on_train_end(self) -> None:
        counts = self.all_gather(torch.tensor(self.train_batches, device=self.device))
        self.rank_train_batches = [int(c) for c in counts.reshape(-1).tolist()]

    # -- export ----------------------------------------------------------------------------------------------
    def export_model(self) -> nn.Module:
        """The model ``save_pretrained`` writes (LoRA methods return merged weights)."""
        return self.model

    def export_extras(self, directory: Path) -> None:
        """Anything saved besides the HF directory (e.g. the LoRA adapter); runs before ``export_model``."""

    def export(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write an HF directory (``save_pretrained`` of model and tokenizer) plus ``method.yaml``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.export_extras(directory)
        model = self.export_model()
        model.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)
        self.write_method_record(directory, metadata)
        return directory

    def write_method_record(self, directory: Path, metadata: dict[str, Any] | None = None) -> None:
        """``method.yaml``: which method and class wrote the directory, on which base model, with what config
        (``load_exported`` and the strategies read it back)."""
        record = {
            "method": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "base_model": self.base_model_name,
            "enable_thinking": self.enable_thinking,
            "eval_strategy": self.eval_strategy_name,
            "config": self.method_config,
            **(metadata or {}),
        }
        (directory / METHOD_FILE).write_text(yaml.safe_dump(record, sort_keys=False))

    @classmethod
    def load_exported(cls, directory: Path, record: dict[str, Any], dtype: str = "float32", device: str = "cpu",
                      attn_implementation: str | None = "sdpa") -> ModelBundle:
        """Load what ``export`` wrote, ready for a strategy. The default: a plain HF directory."""
        return load_pretrained(f"{record.get('method', 'trained')}:{record.get('base_model', directory.name)}",
                               path=str(directory), dtype=dtype, device=device,
                               attn_implementation=attn_implementation,
                               enable_thinking=bool(record.get("enable_thinking", False)))


def read_method_record(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / METHOD_FILE
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def load_trained(directory: str | Path, dtype: str = "float32", device: str = "cpu",
                 attn_implementation: str | None = "sdpa") -> ModelBundle:
    """Load a model saved by ``python -m parallel_decoding.train`` (or any HF directory) for evaluation."""
    directory = Path(directory).expanduser()
    record = read_method_record(directory)
    cls: type[TrainableMethod] = TrainableMethod
    if record.get("class"):
        module_name, _, class_name = record["class"].rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
    return cls.load_exported(directory, record, dtype=dtype, device=device, attn_implementation=attn_implementation)


def enabled_lora(lora: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``method.lora`` settings when LoRA is on, else None (full fine-tuning)."""
    lora = dict(lora or {})
    return lora if lora.get("enabled") else None


class FinetuningMethod(TrainableMethod):
    """A method that trains the loaded model's own weights: all of them, or LoRA adapters through peft.

    A subclass sets ``lora_settings`` (``enabled_lora(lora)``) and ``gradient_checkpointing`` before calling
    ``TrainableMethod.__init__``, which prepares the model with them.
    """

    lora_settings: dict[str, Any] | None
    gradient_checkpointing: bool

    def prepare_model(self, model: nn.Module) -> nn.Module:
        if self.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if self.lora_settings is None:
            return model
        from peft import LoraConfig, get_peft_model  # lazy: peft (~1 s), needed only with LoRA on

        if self.gradient_checkpointing:
            model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need grad inputs
        config = LoraConfig(
            r=int(self.lora_settings.get("r", 8)),
            lora_alpha=int(self.lora_settings.get("alpha", 16)),
            lora_dropout=float(self.lora_settings.get("dropout", 0.05)),
            target_modules=list(self.lora_settings.get("target_modules") or ["q_proj", "k_proj", "v_proj", "o_proj"]),
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, config)

    def export_extras(self, directory: Path) -> None:
        if self.lora_settings is not None:
            self.model.save_pretrained(directory / ADAPTER_DIR)

    def export_model(self) -> nn.Module:
        if self.lora_settings is None:
            return self.model
        # Merged in place: export is the module's last act, and a merged directory loads without peft.
        return self.model.merge_and_unload()
