"""Masked-diffusion training (LLaDA) of a Qwen3 / Llama checkpoint: pretraining on text or SFT.

    python -m parallel_decoding.train method=llada model=tiny_qwen3 dataset=synthetic +experiment=synthetic_llada
    python -m parallel_decoding.train method=llada method.mode=pretrain data._target_=parallel_decoding.methods.llada.data.LLaDADataModule
    python -m parallel_decoding.train method=llada method.init_from=<pretrained diffusion dir> ...   # SFT after pretraining
    python -m parallel_decoding.train method=llada model=smollm2_135m method.shift_logits=true ...   # from a pretrained LM

Features: conversion of the loaded causal model (weights unchanged) or a start from a diffusion directory
(``init_from``), optionally shifted (``shift_logits``: position i read from hidden state i - 1, for pretrained
causal checkpoints; the objective reads logits through ``logits_positions``, so it follows the shift); every
noise setting of ``method.noise``; losses ``guidelines`` / ``dllm`` / ``soft_ce`` in fp32; the SFT prompt never
noised and the loss normalised by answer length; block attention (``attention.py``); random-length cropping of
pretraining batches; the optimizer and warmup schedule of the shared backbone (AdamW, or 8-bit AdamW / Lion
through bitsandbytes with an AdamW fallback); validation with the ``llada`` strategy (the sampler) on the
current weights; export as an HF directory that ``evaluate strategies=[llada] checkpoints.llada=<dir>`` loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn
from transformers import AutoTokenizer

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.methods.base import TrainableMethod
from parallel_decoding.methods.llada.attention import training_block_bias
from parallel_decoding.methods.llada.data import DiffusionCollator, LLaDADataModule, PretrainSettings, SFTSettings
from parallel_decoding.methods.llada.losses import LOSSES, diffusion_loss, row_denominators, scored_positions
from parallel_decoding.methods.llada.modeling import (
    convert_causal_to_diffusion,
    is_diffusion_model,
    load_diffusion_model,
)
from parallel_decoding.methods.llada.noising import NoiseSettings, apply_noise
from parallel_decoding.models.bundle import ModelBundle, finish_loading, resolve_dtype
from parallel_decoding.strategies import strategy_config

EVAL_NOISE_SEED = 0  # validation losses use fixed noise, so they move only when the weights do


class LLaDAMethod(TrainableMethod):
    def __init__(
        self,
        bundle: ModelBundle,
        name: str = "llada",
        optimizer: Any = None,
        scheduler: Any = None,
        generation: dict[str, Any] | None = None,
        eval_strategy: str = "llada",
        mode: str = "sft",
        loss: str = "guidelines",
        label_smoothing: float = 0.1,
        noise: dict[str, Any] | None = None,
        block_attention: dict[str, Any] | None = None,
        mask_token_id: int | None = None,
        shift_logits: bool = False,
        init_from: str | None = None,
        pretrain: dict[str, Any] | None = None,
        sft: dict[str, Any] | None = None,
        sampler: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        if mode not in ("pretrain", "sft"):
            raise ConfigError(f"method.mode={mode!r}; use pretrain or sft")
        if loss not in LOSSES:
            raise ConfigError(f"method.loss={loss!r}; use one of {', '.join(LOSSES)}")
        self.mode, self.loss_name, self.label_smoothing = mode, loss, float(label_smoothing)
        self.noise = NoiseSettings(**(noise or {}))
        if loss == "guidelines" and self.noise.kind == "random_replace":
            raise ConfigError("loss=guidelines scores only mask-id positions, so noise.kind=random_replace would "
                              "train on nothing; use loss=dllm or soft_ce")
        attention = dict(block_attention or {})
        self.block_length = int(attention["block_length"]) if attention.get("enabled") else None
        self.mask_token_id_setting, self.init_from = mask_token_id, init_from
        self.shift_logits_setting = bool(shift_logits)
        self.pretrain_settings = PretrainSettings(**(pretrain or {}))
        self.sft_settings = SFTSettings(**(sft or {}))
        self.sampler_overrides = dict(sampler or {})
        self.gradient_checkpointing = gradient_checkpointing
        super().__init__(bundle, name=name, optimizer=optimizer, scheduler=scheduler, generation=generation,
                         eval_strategy=eval_strategy,
                         config={"mode": mode, "loss": loss, "label_smoothing": label_smoothing,
                                 "noise": dict(noise or {}), "block_attention": attention,
                                 "mask_token_id": mask_token_id, "shift_logits": bool(shift_logits),
                                 "init_from": init_from,
                                 "pretrain": dict(pretrain or {}), "sft": dict(sft or {}),
                                 "sampler": self.sampler_overrides})
        self.method_config["mask_token_id"] = self.mask_token_id  # the id conversion chose
        self.method_config["shift_logits"] = bool(self.model.config.shift_logits)  # init_from's may differ
        self._collator: DiffusionCollator | None = None

    # -- model -----------------------------------------------------------------------------------------------
    def prepare_model(self, model: nn.Module) -> nn.Module:
        if self.init_from:
            loaded = load_diffusion_model(str(Path(self.init_from).expanduser()), dtype=model.dtype,
                                          device=next(model.parameters()).device,
                                          attn_implementation=model.config._attn_implementation)
            if self.mask_token_id_setting is not None and self.mask_token_id_setting != loaded.config.mask_token_id:
                raise ConfigError(f"method.mask_token_id={self.mask_token_id_setting} but {self.init_from} was "
                                  f"trained with {loaded.config.mask_token_id}")
            if self.shift_logits_setting and not loaded.config.shift_logits:  # the directory decides otherwise
                raise ConfigError(f"method.shift_logits=true but {self.init_from} was trained without the shift")
            model = loaded
        else:
            model = convert_causal_to_diffusion(model, self.tokenizer, self.mask_token_id_setting,
                                                self.shift_logits_setting)
        if self.gradient_checkpointing:
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x renamed it
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return model

    @property
    def mask_token_id(self) -> int:
        return int(self.model.config.mask_token_id)

    # -- data ------------------------------------------------------------------------------------------------
    def collator(self) -> DiffusionCollator:
        if self._collator is None:
            self._collator = DiffusionCollator(self.tokenizer, self.mode, self.pretrain_settings, self.sft_settings,
                                               self.enable_thinking)
        return self._collator

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and not self.collator().reads_groups_only \
                and not isinstance(datamodule, LLaDADataModule):
            raise ConfigError("this pretraining / SFT source is not the question groups, so the data module must "
                              "build the training set from it: add "
                              "data._target_=parallel_decoding.methods.llada.data.LLaDADataModule")

    # -- objective -------------------------------------------------------------------------------------------
    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        generator = None
        if not self.training:
            generator = torch.Generator(device=input_ids.device).manual_seed(EVAL_NOISE_SEED)
        elif self.mode == "pretrain" and self.pretrain_settings.random_length_prob > 0:
            length = random_length(input_ids.shape[1], self.pretrain_settings.random_length_prob)
            input_ids, attention_mask = input_ids[:, :length], attention_mask[:, :length]
        return diffusion_objective(self.model, input_ids, attention_mask, batch["answer_start"], self.mode,
                                   self.noise, self.loss_name, self.label_smoothing, self.block_length, generator)

    # -- validation: the llada strategy (the sampler) on the current weights ---------------------------------
    def answering_backend(self) -> HFBackend:
        if self._backend is None:
            bundle = ModelBundle(model=self.model, tokenizer=self.tokenizer, name=self.base_model_name,
                                 enable_thinking=self.enable_thinking)
            self._backend = HFBackend(bundle, self.generation)
            node = strategy_config(self.eval_strategy_name)
            if self.sampler_overrides:
                node = OmegaConf.merge(node, {"sampler": self.sampler_overrides})
            self._strategy = instantiate(node, name=self.eval_strategy_name)
        return self._backend

    # -- export ----------------------------------------------------------------------------------------------
    @classmethod
    def load_exported(cls, directory: Path, record: dict[str, Any], dtype: str = "float32", device: str = "cpu",
                      attn_implementation: str | None = "sdpa") -> ModelBundle:
        return load_diffusion_bundle(directory, record, dtype, device, attn_implementation)


def random_length(length: int, probability: float) -> int:
    """With ``probability``, a length drawn uniformly from 1..``length``, else ``length`` (LLaDA crops 1% of
    pretraining batches so the model also sees sequences shorter than the packed length)."""
    if torch.rand(()).item() >= probability:
        return length
    return int(torch.randint(1, length + 1, ()).item())


def diffusion_objective(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        answer_start: torch.Tensor, mode: str, noise: NoiseSettings, loss: str, label_smoothing: float,
                        block_length: int | None, generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """Noise from ``answer_start`` on (the answer in SFT, everything in pretraining), predict the scored
    positions, return (loss, their count). Padding (attention_mask 0) lies before ``answer_start``."""
    batch, length = input_ids.shape
    positions = torch.arange(length, device=input_ids.device)[None, :]
    eligible = (positions >= answer_start[:, None]) & attention_mask.bool()
    config = model.config
    noised = apply_noise(input_ids, eligible, noise, config.mask_token_id,
                         replace_vocab_size=config.real_vocab_size or config.mask_token_id, generator=generator)
    scored = scored_positions(noised, loss, config.mask_token_id)
    bias = training_block_bias(length, answer_start, block_length) if block_length else None
    logits = model(input_ids=noised.input_ids, attention_bias=bias, attention_mask=attention_mask,
                   logits_positions=scored).logits
    rows = torch.arange(batch, device=input_ids.device)[:, None].expand(batch, length)[scored]
    value = diffusion_loss(logits, input_ids[scored], rows, noised.p,
                           row_denominators(mode, batch, length, answer_start), loss, label_smoothing,
                           noise.reweight_cap)
    return value, int(scored.sum())


def load_diffusion_bundle(directory: str | Path, record: dict[str, Any] | None = None, dtype: str = "float32",
                          device: str = "cpu", attn_implementation: str | None = "sdpa") -> ModelBundle:
    """A saved diffusion directory with its tokenizer, as the ``llada`` strategy and ``generate`` use it."""
    directory = Path(directory).expanduser()
    record = record or {}
    model = load_diffusion_model(str(directory), dtype=resolve_dtype(dtype), device=device,
                                 attn_implementation=attn_implementation)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    finish_loading(model, tokenizer, device)
    if not is_diffusion_model(model):
        raise ConfigError(f"{directory} is not a diffusion model")
    return ModelBundle(model=model, tokenizer=tokenizer, name=f"llada:{record.get('base_model', directory.name)}",
                       enable_thinking=bool(record.get("enable_thinking", False)))
