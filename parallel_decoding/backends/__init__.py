"""Decoding backends a strategy talks to, chosen per run with ``backend=hf|vllm|api``.

``hf`` runs transformers models in-process; ``vllm`` (optional GPU extra) runs vLLM's engine with prefix
caching; ``api`` talks to any OpenAI-compatible chat-completions server. ``vllm`` and ``api`` are imported
only when chosen.
"""

from parallel_decoding.backends.base import (
    Completion,
    build_backend,
    exposes_model_internals,
    refuse_unsupported,
)
from parallel_decoding.backends.hf import GenerationSettings, HFBackend

__all__ = ["Completion", "GenerationSettings", "HFBackend", "build_backend", "exposes_model_internals",
           "refuse_unsupported"]
