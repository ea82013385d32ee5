"""Cross-batch mixing as a trainable method: ``method=crossbatch method.variant=<variant>``.

    python -m parallel_decoding.train +experiment=squad_crossbatch                       # Qwen2.5-7B, 8 GPUs
    python -m parallel_decoding.train +experiment=squad_crossbatch model=tiny_qwen3 hardware=cpu \
        dataset.path=../shared/data/squad/dev-v1.1-half-a.json trainer.max_steps=2       # the same, shrunk
    python -m parallel_decoding.train method=crossbatch method.variant=lora_crossbatch method.mixer.mode=gate ...

Features: the variants of ``model.py`` (``baseline``, ``crossbatch``, ``lora_lmhead``, ``lora_crossbatch``,
``freeze_base``); a teacher-forced answer loss over whole question groups (one forward per batch, answers
aligned under left padding, sum of cross-entropies / number of answer tokens) with ``train/loss_unmixed`` (the
same head without mixing) and ``train/mixing_gain`` logged beside it on logging steps; validation and test
answer with the mixing generator on the current weights, as the ``collab_hidden`` / ``lora_*`` strategies
will; ``cache_frozen_states=true`` (frozen-backbone variants) computes each row's answer-step hidden states
once and reuses them in later epochs (``state_cache.py``); export writes a cross-batch checkpoint
(``checkpoint.py``) into ``<run dir>/model`` and publishes a copy to ``method.publish_dir``
(``${paths.checkpoint_dir}/<dataset>/<model>_<variant>``), where ``evaluate auto_checkpoints=true`` finds it.

The method config is not instantiated recursively (``_recursive_: false``): ``base_model`` carries the model
config (with its loader's ``_target_``) into the checkpoint's ``method.yaml``, so ``load_trained`` can rebuild
the base model; the optimizer and scheduler partials are built here instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.methods.base import TrainableMethod
from parallel_decoding.methods.crossbatch.checkpoint import (
    eval_strategy_for,
    load_backbone,
    publish,
    read_checkpoint_config,
    save_checkpoint,
)
from parallel_decoding.methods.crossbatch.collator import CrossBatchCollator
from parallel_decoding.methods.crossbatch.mixing import CrossBatchMixer, MixerConfig
from parallel_decoding.methods.crossbatch.model import (
    CrossBatchModel,
    causal_lm,
    get_variant,
    lora_config,
    untie_lm_head,
)
from parallel_decoding.methods.crossbatch.state_cache import FrozenStateCache
from parallel_decoding.methods.crossbatch.strategy import CrossBatchStrategy
from parallel_decoding.models.bundle import ModelBundle

log = logging.getLogger(__name__)

def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node


def _built(node: Any) -> Any:
    """A ``_partial_`` config (passed through unbuilt by ``_recursive_: false``) turned into its callable."""
    node = _plain(node)
    return instantiate(node) if isinstance(node, dict) and "_target_" in node else node


class CrossBatchMethod(TrainableMethod):
    def __init__(
        self,
        bundle: ModelBundle,
        name: str = "crossbatch",
        variant: str = "crossbatch",
        mixer: dict[str, Any] | None = None,
        lora: dict[str, Any] | None = None,
        optimizer: Any = None,
        scheduler: Any = None,
        generation: dict[str, Any] | None = None,
        eval_strategy: str | None = None,
        max_length: int = 1024,
        max_answer_tokens: int = 32,
        gradient_checkpointing: bool = False,
        cache_frozen_states: bool = False,
        base_model: dict[str, Any] | None = None,
        publish_dir: str | None = None,
    ) -> None:
        self.variant = get_variant(variant)
        self.mixer_settings = dict(_plain(mixer) or {})
        self.lora_settings = dict(_plain(lora) or {}) if self.variant.lora else None
        self.gradient_checkpointing = gradient_checkpointing
        self.max_length = max_length
        self.max_answer_tokens = max_answer_tokens
        self.base_model_config = _plain(base_model)
        self.publish_dir = Path(publish_dir).expanduser() if publish_dir else None
        super().__init__(
            bundle, name=name, optimizer=_built(optimizer), scheduler=_built(scheduler),
            generation=_plain(generation), eval_strategy=eval_strategy or eval_strategy_for(variant),
            config={"variant": variant, "mixer": None, "lora": self.lora_settings, "max_length": max_length,
                    "max_answer_tokens": max_answer_tokens, "base_model": self.base_model_config},
        )
        if self.model.mixer is not None:
            self.method_config["mixer"] = self.model.mixer.config.to_dict()
        if cache_frozen_states:
            if self.variant.lora:
                raise ConfigError(f"method.cache_frozen_states=true needs a frozen backbone; variant {variant!r} "
                                  f"trains LoRA inside it (use baseline, crossbatch or freeze_base)")
            self.model.state_cache = FrozenStateCache()
        self._collator: CrossBatchCollator | None = None

    # -- the model -------------------------------------------------------------------------------------------
    def prepare_model(self, model: nn.Module) -> CrossBatchModel:
        for param in model.parameters():
            param.requires_grad_(False)
        if self.variant.train_lm_head:
            untie_lm_head(model)
        lm = model
        if self.variant.lora:
            from peft import get_peft_model  # lazy: peft (~1 s) only for a LoRA checkpoint

            if self.gradient_checkpointing:  # only a backbone that trains keeps activations worth checkpointing
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                model.enable_input_require_grads()
            lm = get_peft_model(model, lora_config(self.lora_settings))
        if self.variant.train_lm_head:
            for param in causal_lm(lm).get_output_embeddings().parameters():
                param.requires_grad_(True)
        mixer = None
        if self.variant.mixer:
            hidden_size = int(causal_lm(lm).config.hidden_size)
            config = MixerConfig.from_dict(self.mixer_settings, hidden_size=hidden_size)
            layers = int(causal_lm(lm).config.num_hidden_layers)
            bad = [i for i in config.layers if not -(layers + 1) <= i <= layers]
            if bad:
                raise ConfigError(f"method.mixer.layers={list(config.layers)}: {bad} out of range for a "
                                  f"{layers}-layer model (hidden states 0..{layers}, or -1 for the final one)")
            mixer = CrossBatchMixer(config)
        return CrossBatchModel(lm, mixer, backbone_trains=self.variant.lora)

    def collator(self) -> CrossBatchCollator:
        if self._collator is None:
            self._collator = CrossBatchCollator(self.tokenizer, self.enable_thinking, self.max_length,
                                                self.max_answer_tokens)
        return self._collator

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        log_unmixed = self.training and self.model.mixer is not None and self._logging_step()
        out = self.model.teacher_forced(batch, unmixed_too=log_unmixed)
        n_targets = int(out["n_targets"])
        if log_unmixed:
            self.log("train/loss_unmixed", out["loss_unmixed"], batch_size=n_targets)
            self.log("train/mixing_gain", out["loss_unmixed"] - out["loss"].detach(), batch_size=n_targets)
        return out["loss"], n_targets

    def _logging_step(self) -> bool:
        """Whether Lightning writes this step's logs (the unmixed loss costs a second LM-head pass)."""
        trainer = self._trainer
        if trainer is None:
            return True
        return (self.global_step + 1) % max(1, trainer.log_every_n_steps) == 0 or trainer.fast_dev_run

    # -- validation / test: the mixing generator on the current weights ---------------------------------------
    def answering_backend(self) -> HFBackend:
        if self._backend is None:
            bundle = ModelBundle(model=self.model.lm, tokenizer=self.tokenizer, name=self.base_model_name,
                                 enable_thinking=self.enable_thinking)
            self._backend = HFBackend(bundle, self.generation)
            self._strategy = CrossBatchStrategy.bound(self.eval_strategy_name, self.model)
        return self._backend

    # -- export ----------------------------------------------------------------------------------------------
    def export(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """A cross-batch checkpoint plus ``method.yaml``; a copy goes to ``publish_dir`` when set."""
        directory = Path(directory)
        save_checkpoint(directory, self.model, self.variant.name, self.base_model_name, self.tokenizer,
                        self.lora_settings)
        self.write_method_record(directory, metadata)
        if self.publish_dir is not None:
            publish(directory, self.publish_dir)
            log.info("cross-batch checkpoint published to %s (evaluate auto_checkpoints=true finds it)",
                     self.publish_dir)
        return directory

    @classmethod
    def load_exported(cls, directory: Path, record: dict[str, Any], dtype: str = "float32", device: str = "cpu",
                      attn_implementation: str | None = "sdpa") -> ModelBundle:
        """For plain generation (``load_trained``, the ``finetuned`` strategy): the checkpoint without its mixer,
        with a warning when it has one."""
        config = read_checkpoint_config(directory)
        if config.get("mixer"):
            log.warning("%s holds a mixer, which plain generation does not use: evaluate it with strategy %s",
                        directory, eval_strategy_for(config["variant"]))
        return load_backbone(directory, record, dtype=dtype, device=device,
                                 attn_implementation=attn_implementation)
