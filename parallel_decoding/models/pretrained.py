"""Hub ids and local directories (HF format): the real-user models and every saved fine-tune."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from parallel_decoding.models.bundle import ModelBundle, ModelUnavailableError, finish_loading, resolve_dtype

log = logging.getLogger(__name__)


def load_pretrained(
    name: str,
    hub_id: str | None = None,
    path: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    attn_implementation: str | None = "sdpa",
    enable_thinking: bool = False,
    trust_remote_code: bool = False,
) -> ModelBundle:
    """Load ``path`` if given (a saved directory), else ``hub_id`` through the HF cache / hub."""
    source = path or hub_id
    if not source:
        raise ModelUnavailableError(f"model {name!r} has neither model.hub_id nor model.path set")
    if path is not None and not Path(path).expanduser().is_dir():
        raise ModelUnavailableError(f"model {name!r}: model.path={path} is not a directory")
    kwargs = dict(dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as err:
        raise ModelUnavailableError(
            f"model {name!r} ({source}) is not available: it is not in the local Hugging Face cache and the hub "
            f"cannot be reached. Fix: on a machine with hub access run `hf download {source}` and copy "
            f"~/.cache/huggingface to this machine, or save it with save_pretrained and pass model.path=<dir>, "
            f"or run offline with model=smollm2_135m (embedded) / model=tiny_qwen3 (random, for tests)."
        ) from err
    finish_loading(model, tokenizer, device)
    log.info("loaded %s from %s", name, source)
    return ModelBundle(model=model, tokenizer=tokenizer, name=name, enable_thinking=enable_thinking)
