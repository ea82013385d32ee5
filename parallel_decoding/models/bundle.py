"""What every model loader returns, and the error a missing model raises."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from parallel_decoding.config import ConfigError


@dataclass
class ModelBundle:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    enable_thinking: bool = False  # Qwen3-style templates: thinking off by default (answers in a short budget)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def stop_token_ids(self) -> list[int]:
        """End-of-turn ids: the tokenizer's EOS plus chat end markers the template uses."""
        ids = {self.tokenizer.eos_token_id}
        eos = self.model.generation_config.eos_token_id
        ids.update(eos if isinstance(eos, list) else [eos])
        for marker in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            tid = self.tokenizer.convert_tokens_to_ids(marker)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id and tid is not None:
                ids.add(tid)
        return sorted(i for i in ids if i is not None)

    def load_options(self) -> dict[str, str]:
        """``dtype`` / ``device`` / ``attn_implementation`` for loading a checkpoint beside this model, so the
        strategy that answers with it runs at the same precision, on the same device, with the same attention."""
        return {"dtype": dtype_name(self.model.dtype), "device": str(self.device),
                "attn_implementation": getattr(self.model.config, "_attn_implementation", "sdpa")}


def check_saved_model_dir(directory: str | Path, key: str, hint: str = "") -> Path:
    """A model directory a run will load, checked up front: ``config.json`` present and a JSON object naming a
    ``model_type``. A garbage file then costs one clear line before any work, not a traceback per group."""
    path = Path(directory).expanduser()
    config = path / "config.json"
    if not config.is_file():
        raise ConfigError(f"{key}={directory} is not a saved model directory (no config.json){hint}")
    try:
        content = json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{key}={directory}: its config.json is not valid JSON ({error}); re-export the model"
                          f"{hint}") from error
    if not isinstance(content, dict) or not isinstance(content.get("model_type"), str):
        raise ConfigError(f"{key}={directory}: its config.json is not a model config (no model_type); re-export the model"
                          f"{hint}")
    return path


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[str(dtype)]
    except KeyError as err:
        raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16") from err


def dtype_name(dtype: torch.dtype) -> str:
    """The config name of a loaded model's dtype (what ``resolve_dtype`` reads back), so a checkpoint loaded
    beside a run's model gets the same precision; float32 for anything else."""
    return {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, "float32")


def finish_loading(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, device: str) -> None:
    """Common last steps: a pad token for batched left-padded generation, eval mode, the device."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    model.to(device)
