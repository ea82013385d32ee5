"""Cross-batch checkpoints: what a variant trained, small enough to keep one per (dataset, model, variant).

A checkpoint directory (``${paths.checkpoint_dir}/<dataset>/<model>_<variant>/`` when published by ``train``):

- ``crossbatch.json``: format, variant, base model name and shape, a fingerprint of its embeddings, the mixer
  config (or null) and the LoRA settings (or null);
- ``mixer.safetensors``: the mixing module's state (mixing variants);
- ``lm_head.safetensors``: the trained LM head (every variant but ``freeze_base``);
- ``adapter/``: the peft LoRA adapter directory (LoRA variants);
- ``config.json`` (the base model's config, head untied), tokenizer files, and ``method.yaml`` (how
  ``load_trained`` / the ``finetuned`` strategy load it: the base model, then these weights).

Which evaluate strategy answers with a variant's checkpoint is written once, in ``conf/strategy/``: a strategy
answers with the variant its ``published: ${published:crossbatch,<variant>}`` names (the one ``auto_checkpoints``
looks up) and with those its ``variants`` lists; ``eval_strategy_for`` reads it back for training's validation.

The base model's weights are not copied. Loading checks that the base model is the one trained on (name, hidden
and vocabulary size, embedding fingerprint) and that the mixer config is the one expected: a mismatch raises
``ConfigError`` instead of loading weights into the wrong shapes.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from safetensors.torch import load_file, save_file
from torch import nn

from parallel_decoding.config import ConfigError, available_options
from parallel_decoding.methods.base import METHOD_FILE
from parallel_decoding.methods.crossbatch.mixing import CrossBatchMixer, MixerConfig
from parallel_decoding.methods.crossbatch.model import CrossBatchModel, causal_lm, get_variant, untie_lm_head
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.models.disk_cache import replace_directory
from parallel_decoding.models.pretrained import local_load_failure
from parallel_decoding.strategies import strategy_config

FORMAT_VERSION = 1
CHECKPOINT_FILE = "crossbatch.json"
MIXER_FILE = "mixer.safetensors"
HEAD_FILE = "lm_head.safetensors"
ADAPTER_DIR = "adapter"
_FINGERPRINT_VALUES = 8


@functools.cache
def eval_strategies() -> dict[str, str]:
    """variant -> the strategy answering with its checkpoint, from the strategy YAMLs whose ``published`` is a
    cross-batch variant (``freeze_base`` is only in ``collab_hidden``'s ``variants``: nothing looks it up)."""
    table: dict[str, str] = {}
    for name in available_options("strategy"):
        node = strategy_config(name)
        published = node.get("published")
        if published is not None and published["method"] == "crossbatch":
            for variant in node.get("variants") or [published["variant"]]:
                table.setdefault(variant, name)
    return table


def eval_strategy_for(variant: str) -> str:
    """The evaluate strategy that answers with ``variant``'s checkpoint (``collab_hidden`` for ``crossbatch``)."""
    get_variant(variant)
    strategies = eval_strategies()
    if variant not in strategies:
        raise ConfigError(f"no conf/strategy/*.yaml answers with cross-batch variant {variant!r} (its `published` "
                          f"or `variants`)")
    return strategies[variant]


def fingerprint(model: nn.Module) -> list[float]:
    """A few input-embedding values: tells two checkpoints (or two seeds) of one architecture apart."""
    weight = causal_lm(model).get_input_embeddings().weight.detach()
    rows = sorted({0, 1, weight.shape[0] // 2, weight.shape[0] - 1})
    return [float(x) for x in weight[rows, :_FINGERPRINT_VALUES].float().flatten().cpu()]


def is_checkpoint(directory: str | Path) -> bool:
    return (Path(directory) / CHECKPOINT_FILE).is_file()


def read_checkpoint_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory).expanduser() / CHECKPOINT_FILE
    if not path.is_file():
        raise ConfigError(f"{path.parent} is not a cross-batch checkpoint (no {CHECKPOINT_FILE}); train one with "
                          f"python -m parallel_decoding.train method=crossbatch ...")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON ({type(err).__name__}); the checkpoint is corrupted: "
                          f"train or publish it again") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT_VERSION:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ConfigError(f"{path}: checkpoint format {found!r}, this code reads {FORMAT_VERSION}")
    get_variant(config["variant"])
    return config


def save_checkpoint(directory: str | Path, model: CrossBatchModel, variant: str, base_model: str,
                    tokenizer: Any = None, lora: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s trained parts into ``directory`` (created; files of an older save are replaced)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec = get_variant(variant)
    inner = causal_lm(model.lm)
    config = {
        "format": FORMAT_VERSION,
        "variant": variant,
        "base_model": base_model,
        "hidden_size": int(inner.config.hidden_size),
        "vocab_size": int(inner.get_output_embeddings().weight.shape[0]),
        "fingerprint": fingerprint(inner),
        "mixer": model.mixer.config.to_dict() if model.mixer is not None else None,
        "lm_head": spec.train_lm_head,
        "lora": dict(lora) if spec.lora else None,
    }
    if model.mixer is not None:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.mixer.state_dict().items()},
                  str(directory / MIXER_FILE))
    if spec.train_lm_head:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.head.state_dict().items()},
                  str(directory / HEAD_FILE))
    if spec.lora:
        shutil.rmtree(directory / ADAPTER_DIR, ignore_errors=True)
        model.lm.save_pretrained(str(directory / ADAPTER_DIR))
    inner.config.to_json_file(str(directory / "config.json"))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(directory))
    (directory / CHECKPOINT_FILE).write_text(json.dumps(config, indent=2))
    return directory


def check_base(config: dict[str, Any], model: nn.Module, base_name: str | None = None) -> None:
    """Fail loudly unless ``model`` is the base model the checkpoint was trained on."""
    inner = causal_lm(model)
    problems = []
    if base_name is not None and base_name != config["base_model"]:
        problems.append(f"model {base_name!r} is not the checkpoint's base model {config['base_model']!r}")
    if int(inner.config.hidden_size) != config["hidden_size"]:
        problems.append(f"hidden size {inner.config.hidden_size} != {config['hidden_size']}")
    vocab = int(inner.get_output_embeddings().weight.shape[0])
    if vocab != config["vocab_size"]:
        problems.append(f"vocabulary size {vocab} != {config['vocab_size']}")
    elif not torch.allclose(torch.tensor(fingerprint(inner)), torch.tensor(config["fingerprint"]),
                            rtol=2e-2, atol=1e-3):
        problems.append("its embedding weights differ (another checkpoint or seed of the same architecture)")
    if problems:
        raise ConfigError("cross-batch checkpoint / base model mismatch: " + "; ".join(problems))


def mixer_config(config: dict[str, Any]) -> MixerConfig | None:
    return MixerConfig.from_dict(config["mixer"]) if config.get("mixer") else None


def check_mixer_config(saved: MixerConfig | None, expected: MixerConfig | dict[str, Any] | None) -> None:
    """``expected`` (e.g. the settings a run asks for) must equal what was saved, field by field."""
    if expected is None:
        return
    if saved is None:
        raise ConfigError("a mixer config was expected but the checkpoint has no mixer")
    if isinstance(expected, dict):
        expected = MixerConfig.from_dict(expected, hidden_size=saved.hidden_size)
    differing = {k: (v, getattr(expected, k)) for k, v in saved.to_dict().items() if getattr(expected, k) != v
                 and not (k == "layers" and list(v) == list(getattr(expected, k)))}
    if differing:
        detail = ", ".join(f"{k}: saved {a!r} vs expected {b!r}" for k, (a, b) in differing.items())
        raise ConfigError(f"cross-batch mixer config mismatch ({detail})")


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's safetensors file; a missing, truncated or corrupted one is one line naming it."""
    try:
        return load_file(str(file))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error type for a bad header
        if isinstance(err, OSError) or type(err).__name__ == "SafetensorError":
            raise ConfigError(local_load_failure("checkpoint", file.parent, err)) from None
        raise


def load_mixer(directory: str | Path, config: dict[str, Any] | None = None,
               expected: MixerConfig | dict[str, Any] | None = None, device: str | torch.device = "cpu"
               ) -> CrossBatchMixer | None:
    """The saved mixer rebuilt from its own config (None for variants without one), in eval mode."""
    directory = Path(directory).expanduser()
    config = config or read_checkpoint_config(directory)
    saved = mixer_config(config)
    check_mixer_config(saved, expected)
    if saved is None:
        return None
    mixer = CrossBatchMixer(saved)
    state = _read_weights(directory / MIXER_FILE)
    try:
        mixer.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"{directory / MIXER_FILE} does not fit its config {saved.to_dict()}: {err}") from err
    return mixer.to(device).eval()


def load_head(directory: str | Path, like: nn.Module) -> nn.Linear:
    """The trained LM head as a module of its own, on ``like``'s device and dtype (``like`` stays untouched)."""
    reference = like.weight
    head = nn.Linear(reference.shape[1], reference.shape[0], bias=getattr(like, "bias", None) is not None,
                     device=reference.device, dtype=reference.dtype)
    state = _read_weights(Path(directory).expanduser() / HEAD_FILE)
    head.load_state_dict({k: v.to(device=reference.device, dtype=reference.dtype) for k, v in state.items()})
    return head.eval().requires_grad_(False)


def apply_checkpoint(directory: str | Path, model: nn.Module, config: dict[str, Any] | None = None,
                     base_name: str | None = None) -> nn.Module:
    """Load the trained head and merged LoRA weights into ``model`` (a fresh base model, changed in place)."""
    directory = Path(directory).expanduser()
    config = config or read_checkpoint_config(directory)
    check_base(config, model, base_name)
    if config.get("lm_head"):
        head = untie_lm_head(model)
        state = _read_weights(directory / HEAD_FILE)
        reference = next(head.parameters())
        head.load_state_dict({k: v.to(device=reference.device, dtype=reference.dtype) for k, v in state.items()})
    if config.get("lora"):
        from peft import PeftModel  # lazy: peft (~1 s) only for a LoRA checkpoint

        model = PeftModel.from_pretrained(model, str(directory / ADAPTER_DIR)).merge_and_unload()
    return model.eval()


def publish(source: str | Path, target: str | Path) -> Path:
    """Copy a checkpoint directory to ``target``, replacing an older one only once the copy is complete."""
    return replace_directory(Path(target), lambda staging: shutil.copytree(source, staging, dirs_exist_ok=True))


def load_backbone(directory: Path, record: dict[str, Any], dtype: str = "float32", device: str = "cpu",
                  attn_implementation: str | None = "sdpa") -> ModelBundle:
    """The base model from the record's loader, with the trained head and merged LoRA (no mixing: the
    ``collab_hidden`` / ``lora_crossbatch`` strategies add the mixer)."""
    config = read_checkpoint_config(directory)
    base = (record.get("config") or {}).get("base_model") or {}
    loader = dict(base.get("loader") or {})
    if "_target_" not in loader:
        raise ConfigError(f"{directory / METHOD_FILE} does not say how to load the base model "
                          f"(config.base_model.loader); load the base yourself and use apply_checkpoint")
    overrides = {"dtype": dtype, "device": device, "attn_implementation": attn_implementation}
    loader.update({k: v for k, v in overrides.items() if k in loader})
    bundle: ModelBundle = instantiate(loader)
    model = apply_checkpoint(directory, bundle.model, config, base_name=record.get("base_model"))
    return ModelBundle(model=model, tokenizer=bundle.tokenizer, name=f"crossbatch_{config['variant']}:"
                       f"{config['base_model']}", enable_thinking=bundle.enable_thinking)
