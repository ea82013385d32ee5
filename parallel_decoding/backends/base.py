"""What every backend offers strategies, and how a run picks one (``backend=hf|vllm|api``).

``Backend`` is the one interface strategies program against; ``hf``, ``vllm`` and ``api`` implement it
(checked by ``tests/backends/test_protocol.py``). ``GenerationSettings`` is the one generation-settings type
all of them take. Strategies that read hidden states or pass custom attention masks set
``requires_model_internals = True``; only backends that run the model in-process (``model_internals = True``:
``hf``) can serve them, and the run refuses such a pairing before loading anything.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Iterable, Mapping, Protocol, Sequence, runtime_checkable

from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from parallel_decoding.config import ConfigError
from parallel_decoding.decoding.sampling import SamplingSettings
from parallel_decoding.metrics.efficiency import EfficiencyStats


@dataclass
class GenerationSettings:
    """Decoding settings of a run (``cfg.generation`` + ``seed``), shared by every backend."""

    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def sampling(self) -> SamplingSettings:
        """The token-choice part, for the in-process decoders (``decoding``, the methods' generators)."""
        return SamplingSettings(self.do_sample, self.temperature, self.top_p, self.seed)


def checked_generation(values: Mapping[str, Any], seed: int = 0, key: str = "generation") -> GenerationSettings:
    """``GenerationSettings`` from a config node, refused with one line naming the key when a value cannot work
    (``max_new_tokens`` -1, 0 or "abc" used to fail inside every group, leaving a run with no answers)."""
    values = dict(values)
    known = {f.name for f in fields(GenerationSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]} is not a generation setting; known: {', '.join(sorted(known - {'seed'}))}")

    def bad(name: str, want: str) -> ConfigError:
        return ConfigError(f"{key}.{name} must be {want}, got {values[name]!r}")

    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def is_number(value: Any) -> bool:
        return (is_int(value) or isinstance(value, float)) and math.isfinite(value)

    if "max_new_tokens" in values and not (is_int(values["max_new_tokens"]) and values["max_new_tokens"] >= 1):
        raise bad("max_new_tokens", "a whole number >= 1")
    if "do_sample" in values and not isinstance(values["do_sample"], bool):
        raise bad("do_sample", "true or false")
    if "temperature" in values and not (is_number(values["temperature"]) and values["temperature"] >= 0):
        raise bad("temperature", "a number >= 0")
    if values.get("do_sample") and values.get("temperature", 1.0) == 0:
        raise bad("temperature", "> 0 when do_sample is true")
    if "top_p" in values and not (is_number(values["top_p"]) and 0 < values["top_p"] <= 1):
        raise bad("top_p", "a number in (0, 1]")
    if not is_int(seed):
        raise ConfigError(f"seed must be a whole number, got {seed!r}")
    return GenerationSettings(**{**values, "seed": seed})



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
