"""Lightning's overhead on a training step: ``method=sft`` under a Lightning Trainer vs a bare PyTorch loop.

    python -m parallel_decoding.benchmarks.train_overhead                         # tiny_qwen3 and smollm2_135m
    python -m parallel_decoding.benchmarks.train_overhead --models smollm2_135m --steps 20 --repeats 3

Both loops run the same ``SFTMethod`` model (fresh weights from the model config each run), the same pre-collated
batches (SQuAD half A when present, else synthetic groups), the same loss (``answer_loss``), AdamW, the cosine
schedule and gradient clipping at 1.0. The Lightning side is the real ``TrainableMethod.training_step`` (with its
``self.log``) inside ``Trainer.fit`` without checkpoints, loggers or progress bar, so what differs is Lightning's
loop, hooks and logging. Time per step is measured over ``--steps`` steps after ``--warmup`` steps; the two
loops alternate ``--repeats`` times (drift on a shared machine hits both) and the medians are compared.
Target: overhead <= 5%.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from parallel_decoding.config import CONFIG_DIR, PROJECT_ROOT, ConfigError
from parallel_decoding.data.loading import load_groups
from parallel_decoding.methods.sft import SFTMethod, answer_loss
from parallel_decoding.training.optim import build_optimizer, warmup_schedule
from parallel_decoding.utils.cli import exit_on_user_error

SQUAD = PROJECT_ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1-half-a.json"
LR = 3e-5
CLIP = 1.0
log = logging.getLogger(__name__)


def _config(model: str) -> DictConfig:
    overrides = [f"model={model}", "paths.output_dir=/tmp"]
    if SQUAD.is_file():
        overrides += ["dataset=squad", f"dataset.path={SQUAD}", "dataset.context_count=64"]
    else:
        overrides += ["dataset=synthetic", "dataset.context_count=64"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _method(cfg: DictConfig) -> SFTMethod:
    bundle = instantiate(cfg.model.loader)
    return SFTMethod(bundle, optimizer=functools.partial(build_optimizer, lr=LR),
                     scheduler=functools.partial(warmup_schedule, kind="cosine", warmup=0.1))


def _batches(cfg: DictConfig, method: SFTMethod, count: int, batch_size: int) -> list[dict[str, torch.Tensor]]:
    collator = method.collator()
    examples = [ex for group in load_groups(cfg.dataset).groups for ex in collator.examples(group)]
    if len(examples) < count * batch_size:
        raise ConfigError(f"only {len(examples)} examples for {count} batches of {batch_size}")
    return [collator(examples[i * batch_size:(i + 1) * batch_size]) for i in range(count)]


def bare_loop(cfg: DictConfig, batches: list[dict[str, torch.Tensor]], warmup: int) -> float:
    """Seconds per step of a plain PyTorch loop over ``batches`` (after ``warmup`` steps)."""
    method = _method(cfg)
    model = method.model
    optimizer = build_optimizer(model, lr=LR)
    scheduler = warmup_schedule(optimizer, total_steps=len(batches), kind="cosine", warmup=0.1)["scheduler"]
    start = None
    for step, batch in enumerate(batches):
        if step == warmup:
            start = time.perf_counter()
        loss, _ = answer_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / (len(batches) - warmup)


class _StepClock(L.Callback):
    """Wall time from the start of step ``warmup`` to the end of the last step: hooks and logging included."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.end = time.perf_counter()


def lightning_loop(cfg: DictConfig, batches: list[dict[str, torch.Tensor]], warmup: int) -> float:
    """Seconds per step of ``Trainer.fit`` on the same batches (``TrainableMethod.training_step``)."""
    method = _method(cfg)
    clock = _StepClock(warmup)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=len(batches), max_epochs=-1, precision="32-true",
                        gradient_clip_val=CLIP, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                        callbacks=[clock], log_every_n_steps=10, inference_mode=False)
    trainer.fit(method, train_dataloaders=DataLoader(batches, batch_size=None, shuffle=False))
    return (clock.end - clock.start) / (len(batches) - warmup)


def benchmark(model: str, steps: int, warmup: int, repeats: int, batch_size: int) -> dict[str, Any]:
    cfg = _config(model)
    batches = _batches(cfg, _method(cfg), warmup + steps, batch_size)
    bare, lightning = [], []
    for _ in range(repeats):
        bare.append(bare_loop(cfg, batches, warmup))
        lightning.append(lightning_loop(cfg, batches, warmup))
    bare_s, lightning_s = statistics.median(bare), statistics.median(lightning)
    return {
        "model": model, "batch_size": batch_size, "tokens_per_batch": int(batches[0]["input_ids"].numel()),
        "steps": steps, "warmup": warmup, "repeats": repeats,
        "bare_ms_per_step": round(1000 * bare_s, 2), "lightning_ms_per_step": round(1000 * lightning_s, 2),
        "overhead_pct": round(100 * (lightning_s / bare_s - 1), 2),
        "bare_runs_ms": [round(1000 * s, 2) for s in bare], "lightning_runs_ms": [round(1000 * s, 2) for s in lightning],
        "torch_threads": torch.get_num_threads(),
    }


@exit_on_user_error(log)
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny_qwen3,smollm2_135m")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--output", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    L.seed_everything(0, verbose=False)
    rows = [benchmark(m, args.steps, args.warmup, args.repeats, args.batch_size) for m in args.models.split(",")]
    print(f"{'model':<14}{'tokens/batch':>13}{'bare ms/step':>14}{'Lightning ms/step':>19}{'overhead':>10}")
    for row in rows:
        print(f"{row['model']:<14}{row['tokens_per_batch']:>13}{row['bare_ms_per_step']:>14.1f}"
              f"{row['lightning_ms_per_step']:>19.1f}{row['overhead_pct']:>9.1f}%")
    if args.output:
        args.output.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
