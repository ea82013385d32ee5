"""What every backend offers strategies, and how a run picks one (``backend=hf|vllm|api``).

A backend is duck-typed; strategies call only these:

* ``chat_ids(messages) -> prompt`` — the backend's prompt for a chat ending in an open assistant turn
  (token ids for ``hf``/``vllm``; the messages themselves for ``api``, whose server applies the template);
* ``generate(prompts, batch_size=None, max_new_tokens=None) -> outputs`` and ``decode(output) -> str``;
* ``settings`` (``GenerationSettings``), ``measure()`` (a context manager yielding one group's
  ``EfficiencyStats``), ``record(prompts, outputs, calls)`` and ``warmup()``.

Strategies that read hidden states or pass custom attention masks set ``requires_model_internals = True``;
only backends that run the model in-process (``model_internals = True``: ``hf``) can serve them, and the run
refuses such a pairing before loading anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from parallel_decoding.backends.hf import GenerationSettings, HFBackend
from parallel_decoding.config import ConfigError


@dataclass(frozen=True)
class Completion:
    """One answer from a remote backend, with the token counts its server reported."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the server served from its prefix cache (0 when not reported)
    finish_reason: str | None = None


def backend_name(backend_cfg: DictConfig) -> str:
    return backend_cfg._target_.rsplit(".", 1)[-1]


def exposes_model_internals(backend_cls: Any) -> bool:
    """Whether strategies may use hidden states / custom masks on this backend class."""
    return bool(getattr(backend_cls, "model_internals", isinstance(backend_cls, type)
                        and issubclass(backend_cls, HFBackend)))


def refuse_unsupported(strategies: Iterable[Any], backend_cfg: DictConfig) -> None:
    """Fail before any loading when a strategy needs model internals the chosen backend does not expose."""
    backend_cls = get_object(backend_cfg._target_)
    if exposes_model_internals(backend_cls):
        return
    needy = [s.name for s in strategies if getattr(s, "requires_model_internals", False)]
    if needy:
        raise ConfigError(
            f"strategies {needy} need the model's hidden states or custom attention masks, which backend "
            f"{backend_name(backend_cfg)} does not expose; run them with backend=hf (or drop them from strategies)"
        )


def build_backend(backend_cfg: DictConfig, settings: GenerationSettings, device: str | None = None) -> Any:
    """Instantiate ``cfg.backend`` (nested nodes such as ``hf``'s model loader first), then bind the run's
    generation settings (passed after instantiation so Hydra never turns the dataclass into a config).
    ``device`` overrides the in-process model's device (one GPU per rank in sharded runs)."""
    if device and "bundle" in backend_cfg:
        backend_cfg = OmegaConf.create(OmegaConf.to_container(backend_cfg, resolve=True))
        backend_cfg.bundle.device = device
    return instantiate(backend_cfg, _partial_=True, _convert_="all")(settings=settings)
