"""What every backend offers strategies, and how a run picks one (``backend=hf|vllm|api``).

``Backend`` is the one interface strategies program against; ``hf``, ``vllm`` and ``api`` implement it
(checked by ``tests/backends/test_protocol.py``). ``GenerationSettings`` is the one generation-settings type
all of them take. Strategies that read hidden states or pass custom attention masks set
``requires_model_internals = True``; only backends that run the model in-process (``model_internals = True``:
``hf``) can serve them, and the run refuses such a pairing before loading anything.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Protocol, Sequence, runtime_checkable

from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from parallel_decoding.config import ConfigError
from parallel_decoding.metrics.efficiency import EfficiencyStats


@dataclass
class GenerationSettings:
    """Decoding settings of a run (``cfg.generation`` + ``seed``), shared by every backend."""

    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Completion:
    """One answer from a remote backend, with the token counts its server reported."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the server served from its prefix cache (0 when not reported)
    finish_reason: str | None = None


@runtime_checkable
class Backend(Protocol):
    """The calls a strategy may make on any backend.

    A *prompt* is whatever ``chat_ids`` returns (token ids for ``hf``/``vllm``; the messages themselves for
    ``api``, whose server applies the template); an *output* is what ``generate`` returns per prompt and
    ``decode`` turns into text. ``measure()`` yields one group's ``EfficiencyStats``; everything generated
    inside it is counted. ``record`` accounts for a decoder call made outside ``generate``
    (``computed_prompt_tokens``: prompt tokens that call actually ran through the model; ``None`` = all).
    """

    model_internals: ClassVar[bool]
    settings: GenerationSettings

    def chat_ids(self, messages: Sequence[dict[str, str]]) -> Any: ...

    def generate(self, prompts: Sequence[Any], batch_size: int | None = None,
                 max_new_tokens: int | None = None) -> list[Any]: ...

    def decode(self, output: Any) -> str: ...

    def measure(self) -> AbstractContextManager[EfficiencyStats]: ...

    def record(self, prompts: Sequence[Any], outputs: Sequence[Any], calls: int,
               computed_prompt_tokens: int | None = None) -> None: ...

    def warmup(self) -> None: ...


def backend_name(backend_cfg: DictConfig) -> str:
    return backend_cfg._target_.rsplit(".", 1)[-1]


def exposes_model_internals(backend_cls: Any) -> bool:
    """Whether strategies may use hidden states / custom masks on this backend class (or instance)."""
    return bool(getattr(backend_cls, "model_internals", False))


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


def build_backend(backend_cfg: DictConfig, settings: GenerationSettings, device: str | None = None) -> Backend:
    """Instantiate ``cfg.backend`` (nested nodes such as ``hf``'s model loader first), then bind the run's
    generation settings (passed after instantiation so Hydra never turns the dataclass into a config).
    ``device`` overrides the in-process model's device (one GPU per rank in sharded runs)."""
    if device and "bundle" in backend_cfg:
        backend_cfg = OmegaConf.create(OmegaConf.to_container(backend_cfg, resolve=True))
        backend_cfg.bundle.device = device
    return instantiate(backend_cfg, _partial_=True, _convert_="all")(settings=settings)
