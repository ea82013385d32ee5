"""Model loading: every ``conf/model/*.yaml`` names one of these loaders with ``_target_``."""

from parallel_decoding.models.bundle import ModelBundle, resolve_dtype
from parallel_decoding.config import ModelUnavailableError
from parallel_decoding.models.gguf import load_packaged_gguf
from parallel_decoding.models.pretrained import load_pretrained
from parallel_decoding.models.tiny import build_tiny_qwen3

__all__ = ["ModelBundle", "ModelUnavailableError", "build_tiny_qwen3", "load_packaged_gguf", "load_pretrained",
           "resolve_dtype"]
