"""Hub ids and local directories (HF format): the real-user models and every saved fine-tune."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from parallel_decoding.utils.hub import prepare_hub_access
from parallel_decoding.models.bundle import ModelBundle, finish_loading, resolve_dtype
from parallel_decoding.config import ModelUnavailableError

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
    offline = None if path is not None else prepare_hub_access()  # offline: no minute of hub retries
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except Exception as err:  # noqa: BLE001 - classified below; anything else keeps its traceback
        if path is not None and is_load_failure(err):
            raise ModelUnavailableError(local_load_failure(f"model {name!r}", path, err)) from None
        if path is None and (isinstance(err, OSError) or offline):
            raise ModelUnavailableError(
                f"model {name!r} ({source}) is not available: it is not in the local Hugging Face cache and the hub "
                f"cannot be reached{f' ({offline})' if offline else ''}. Fix: on a machine with hub access run "
                f"`hf download {source}` and copy ~/.cache/huggingface to this machine, or save it with "
                f"save_pretrained and pass model.path=<dir>, or run offline with model=smollm2_135m (embedded) / "
                f"model=tiny_qwen3 (random, for tests)."
            ) from None
        raise
    finish_loading(model, tokenizer, device)
    log.info("loaded %s from %s", name, source)
    return ModelBundle(model=model, tokenizer=tokenizer, name=name, enable_thinking=enable_thinking)


def is_load_failure(err: BaseException) -> bool:
    """What a broken saved directory raises: missing/unreadable files, bad JSON, bad safetensors, shape clashes."""
    return isinstance(err, (OSError, ValueError, KeyError, RuntimeError)) or type(err).__name__ == "SafetensorError"


def local_load_failure(what: str, directory: str | Path, err: BaseException) -> str:
    """One line for a local model directory that does not load (never a hub download hint: it is not a hub id)."""
    detail = " ".join(str(err).split())[:200] or "no detail"
    return (f"{what}: the saved model in {directory} cannot be loaded ({type(err).__name__}: {detail}); it is "
            f"incomplete or corrupted: save or export it again, or point at a complete copy")
