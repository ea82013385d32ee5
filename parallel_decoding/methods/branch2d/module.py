"""``method=branch2d``: fine-tune a model patched with Interleaved2DRoPE on 2D branch layouts.

    python -m parallel_decoding.train +experiment=synthetic_branch2d            # tiny_qwen3, CPU, minutes
    python -m parallel_decoding.train method=branch2d model=smollm2_135m dataset=squad \
        dataset.path=../shared/data/squad/dev-v1.1-half-a.json trainer.max_steps=300
    python -m parallel_decoding.evaluate 'strategies=[branch2d]' checkpoints.branch2d=<run dir>/model

Features: the rope patch is applied before anything else (LoRA wraps the patched model), with the channel set of
``method.rope`` recorded in the model config, so the exported directory restores it; one training example per
question group (trunk = shared context, or with ``layout.trunk=context_first_question`` context + Q1 + A1 with A1
supervised causally; branches = the other questions, ``data.py``) with loss only on answer tokens, each the same
branch's next token (``in_sequence_loss`` of ``methods/finetuning.py``, shared with inseq, which takes the stacked
2D positions unchanged); full or LoRA fine-tuning with sft's keys (``method.lora.*``, the same ``FinetuningMethod``
code); validation answers with the ``branch2d`` strategy (parallel branch decoding on the current weights), so
``val/em`` is what ``evaluate`` reports; the branch-collapse diagnostic (mean pairwise cosine of the branches' final
hidden states) is logged as ``train/collapse`` every ``collapse_every_n_steps`` and as ``val/collapse``;
``method.yaml`` records the layout (mask, alignment, stride, trunk) the strategy then decodes with.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchmetrics import MeanMetric

from parallel_decoding.decoding import additive_mask
from parallel_decoding.methods.base import FinetuningMethod, enabled_lora
from parallel_decoding.methods.branch2d.data import Branch2DCollator, LayoutSettings
from parallel_decoding.methods.branch2d.decoder import mean_pairwise_cosine
from parallel_decoding.methods.branch2d.rope import apply_interleaved_2d_rope, patch_from_config
from parallel_decoding.methods.datamodule import EvalBatch
from parallel_decoding.methods.finetuning import IGNORE_INDEX, in_sequence_loss
from parallel_decoding.models.bundle import ModelBundle


@torch.no_grad()
def batch_collapse(model: nn.Module, batch: dict[str, torch.Tensor]) -> float | None:
    """Collapse diagnostic on a training batch: per row, each branch's final hidden state averaged over its
    supervised slots; the mean pairwise cosine between a row's branches, averaged over rows with >= 2 branches."""
    dtype = next(model.parameters()).dtype
    mask = additive_mask(batch["allowed"].cpu(), dtype).to(batch["input_ids"].device)
    hidden = model.get_decoder()(input_ids=batch["input_ids"], attention_mask=mask,
                                 position_ids=batch["position_ids"], use_cache=False).last_hidden_state
    supervised = batch["targets"] != IGNORE_INDEX
    values = []
    for row in range(hidden.shape[0]):
        means = [hidden[row][(batch["branch"][row] == b) & supervised[row]].mean(dim=0)
                 for b in batch["branch"][row].unique().tolist() if b >= 0
                 and bool(((batch["branch"][row] == b) & supervised[row]).any())]
        value = mean_pairwise_cosine(torch.stack(means)) if len(means) >= 2 else None
        if value is not None:
            values.append(value)
    return sum(values) / len(values) if values else None


class Branch2DMethod(FinetuningMethod):
    def __init__(
        self,
        bundle: ModelBundle,
        name: str = "branch2d",
        optimizer: Any = None,
        scheduler: Any = None,
        generation: dict[str, Any] | None = None,
        eval_strategy: str = "branch2d",
        max_length: int = 2048,
        layout: dict[str, Any] | None = None,
        rope: dict[str, Any] | None = None,
        lora: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        collapse_every_n_steps: int = 50,
    ) -> None:
        self.lora_settings = enabled_lora(lora)
        self.gradient_checkpointing = gradient_checkpointing
        self.layout_settings = LayoutSettings(**(layout or {}))
        self.rope_settings = dict(rope or {})
        self.max_length = max_length
        self.collapse_every_n_steps = collapse_every_n_steps
        self.channels = None
        super().__init__(bundle, name=name, optimizer=optimizer, scheduler=scheduler, generation=generation,
                         eval_strategy=eval_strategy,
                         config={"max_length": max_length, "layout": asdict(self.layout_settings),
                                 "lora": self.lora_settings, "gradient_checkpointing": gradient_checkpointing})
        self.method_config["rope"] = self.channels.to_dict()  # resolved by prepare_model (explicit or default)
        self.val_collapse = MeanMetric()
        self._collator: Branch2DCollator | None = None

    def prepare_model(self, model: nn.Module) -> nn.Module:
        # Patch first: LoRA then wraps the patched model, and the channel set lands in the config it exports.
        self.channels = apply_interleaved_2d_rope(model, self.rope_settings.get("x_channels"),
                                                  self.rope_settings.get("y_channels"))
        return super().prepare_model(model)  # gradient checkpointing + LoRA, sft's keys

    def collator(self) -> Branch2DCollator:
        if self._collator is None:
            self._collator = Branch2DCollator(self.tokenizer, self.layout_settings, self.enable_thinking,
                                              self.max_length)
        return self._collator

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        return in_sequence_loss(self.model, batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        every = self.collapse_every_n_steps
        if every and self.train_batches % every == 1 % every:  # the first batch, then every n-th
            value = batch_collapse(self.model, batch)
            if value is not None:
                self.log("train/collapse", value, batch_size=1)
        return loss

    # -- validation: the branch2d strategy on the current weights, with this run's layout -------------------
    def answering_backend(self):
        fresh = self._backend is None
        backend = super().answering_backend()
        if fresh:
            self._strategy.layout_settings = self.layout_settings
        return backend

    def validation_step(self, batch: EvalBatch, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        collator = self.collator()
        examples = [ex for group, counted in zip(batch.groups, batch.counted) if counted
                    for ex in collator.examples(group)]
        if examples:
            value = batch_collapse(self.model, self._to_device(collator(examples)))
            if value is not None:
                self.val_collapse.update(value)
                self.log("val/collapse", self.val_collapse, on_step=False, on_epoch=True)

    # -- export: FinetuningMethod's (merged weights + adapter for LoRA); the config carries the rope patch ---
    @classmethod
    def load_exported(cls, directory: Path, record: dict[str, Any], dtype: str = "float32", device: str = "cpu",
                      attn_implementation: str | None = "sdpa") -> ModelBundle:
        bundle = super().load_exported(directory, record, dtype=dtype, device=device,
                                       attn_implementation=attn_implementation)
        patch_from_config(bundle.model)
        return bundle
