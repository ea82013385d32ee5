"""Stage 2 of the GPU check: one optimizer step of every method (``conf/method``) on a random Qwen3-0.6B-shaped
model, under the project's GPU training setup (``hardware=gpu``: fp32 master weights, ``bf16-mixed`` compute).

Each method is built from its real config (``train.yaml`` composed with ``method=<name> hardware=<gpu|cpu>``),
gets a fresh copy of one randomly initialised model, a data module over SQuAD-length groups, and the configured
Trainer (one step, no validation, checkpoints or loggers). A callback records, before the optimizer step, the
gradients of the trainable parameters (LoRA A and B apart: B starts at zero, so A's first gradient is zero by
construction and B's must not be), then the loss, whether the trainable weights moved, and the peak memory.
Passing: finite loss, finite non-zero gradients, weights changed, and for LoRA non-zero ``lora_B`` gradients.
"""

from __future__ import annotations

import copy
import math
import tempfile
from typing import Any

import lightning.pytorch as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from parallel_decoding.benchmarks.gpu.common import StageReport, build_random_qwen3, free_memory, status_of
from parallel_decoding.benchmarks.gpu.workload import synthetic_groups
from parallel_decoding.config import CONFIG_DIR
from parallel_decoding.models.bundle import ModelBundle

# (label, overrides): every conf/method, plus the cross-batch LoRA variant (LoRA beside the mixer)
METHODS: tuple[tuple[str, list[str]], ...] = (
    ("sft", ["method=sft"]),
    ("sft_lora", ["method=sft_lora"]),
    ("crossbatch", ["method=crossbatch"]),
    ("crossbatch:lora_crossbatch", ["method=crossbatch", "method.variant=lora_crossbatch"]),
    ("inseq", ["method=inseq"]),
    ("branch2d", ["method=branch2d"]),
    ("llada", ["method=llada"]),
)


class StepProbe:
    """Lightning callback (built lazily so importing this module needs no Lightning)."""

    def __new__(cls, device: str):
        class _Probe(L.Callback):
            def __init__(self) -> None:
                self.device, self.found = device, {}
                self.snapshot: dict[str, torch.Tensor] = {}
                self.memory: dict[str, float] = {}

            def on_train_start(self, trainer, pl_module) -> None:
                if torch.device(self.device).type == "cuda":
                    torch.cuda.synchronize()
                    self.memory["allocated_before_gib"] = torch.cuda.memory_allocated() / 2**30
                    torch.cuda.reset_peak_memory_stats()

            def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
                norms = {"lora_A": 0.0, "lora_B": 0.0, "other": 0.0}
                counts = {"trainable": 0, "no_grad": 0, "zero_grad": 0, "nonfinite_grad": 0}
                for name, param in pl_module.named_parameters():
                    if not param.requires_grad:
                        continue
                    counts["trainable"] += 1
                    if param.grad is None:
                        counts["no_grad"] += 1
                        continue
                    grad = param.grad.detach().float()
                    if not torch.isfinite(grad).all():
                        counts["nonfinite_grad"] += 1
                        continue
                    norm = float(grad.norm())
                    counts["zero_grad"] += norm == 0.0
                    kind = "lora_A" if "lora_A" in name else "lora_B" if "lora_B" in name else "other"
                    norms[kind] = math.hypot(norms[kind], norm)
                    if len(self.snapshot) < 4 and norm > 0:
                        self.snapshot[name] = param.detach().clone()
                self.found.update(grad_norms={k: round(v, 6) for k, v in norms.items()}, **counts)

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                loss = outputs["loss"] if isinstance(outputs, dict) else outputs
                self.found["loss"] = float(loss.detach().float())
                params = dict(pl_module.named_parameters())
                self.found["weights_changed"] = bool(self.snapshot) and all(
                    not torch.equal(params[name].detach(), before) for name, before in self.snapshot.items())
                self.found["input_shape"] = list(batch["input_ids"].shape) if "input_ids" in batch else None
                if torch.device(self.device).type == "cuda":
                    torch.cuda.synchronize()
                    self.memory["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30

        return _Probe()


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def one_step(label: str, overrides: list[str], template, groups: list, device: str, batch_size: int
             ) -> dict[str, Any]:
    hardware = "gpu" if torch.device(device).type == "cuda" else "cpu"
    cfg = compose_train([*overrides, f"hardware={hardware}", "model=tiny_qwen3",
                         f"data.batch_size={batch_size}", "data.val_groups=0", "data.test_groups=0",
                         "paths.output_dir=" + tempfile.mkdtemp(prefix="gpu_check_train_")])
    bundle = ModelBundle(model=copy.deepcopy(template.model), tokenizer=template.tokenizer, name=template.name)
    method = instantiate(cfg.method, _partial_=True, _convert_="all")(bundle=bundle)
    datamodule = instantiate(cfg.data, _partial_=True)(groups=groups, collator=method.collator())
    probe = StepProbe(device)
    trainer = instantiate(cfg.trainer, _partial_=True)(
        callbacks=[probe], logger=False, max_steps=1, limit_val_batches=0, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(method, datamodule=datamodule)
    found, memory = probe.found, probe.memory
    lora = "lora" in label
    passed = (math.isfinite(found.get("loss", math.nan)) and found.get("trainable", 0) > 0
              and found.get("nonfinite_grad", 1) == 0 and found.get("weights_changed", False)
              and sum(found.get("grad_norms", {}).values()) > 0
              and (not lora or found["grad_norms"]["lora_B"] > 0))
    result = {**found, "precision": str(cfg.hardware.precision), "global_step": trainer.global_step,
              "params_m": round(sum(p.numel() for p in method.parameters()) / 1e6, 1),
              "trainable_m": round(sum(p.numel() for p in method.parameters() if p.requires_grad) / 1e6, 2),
              **{k: round(v, 3) for k, v in memory.items()}, "status": status_of(passed and trainer.global_step == 1)}
    del trainer, method, datamodule, bundle
    return result


def run(report: StageReport, device: str, dry_run: bool) -> None:
    shape = "tiny" if dry_run else "qwen3_0_6b"
    state: dict[str, Any] = {}

    def build() -> dict[str, Any]:
        # fp32 master weights, as train.yaml loads them; bf16-mixed computes in bf16
        state["template"] = template = build_random_qwen3(shape, torch.float32, device)
        template.model.train()
        groups = synthetic_groups(template.tokenizer)
        state["groups"] = groups[:1] if dry_run else groups
        return {"status": "info", "shape": shape, "params_m": round(
            sum(p.numel() for p in template.model.parameters()) / 1e6, 1), "groups": len(state["groups"])}

    report.run(f"model[{shape}]", build, device)
    if "template" not in state:
        return
    batch_size = 2 if dry_run else 8
    for label, overrides in METHODS:
        report.run(f"train_step[{label}]",
                   lambda: one_step(label, overrides, state["template"], state["groups"], device, batch_size), device)
        free_memory(device)
