"""Is the Hugging Face hub reachable? Asked once per process, so an offline machine fails in a second instead of
spending a minute on the hub client's retries (each logged as a warning).

Offline (``HF_HUB_OFFLINE`` & co. set, or one quick connection to the hub failed), the hub libraries are put in
offline mode: what is in the local HF cache still loads, anything else fails at once and the caller says what
to do instead.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from urllib.parse import urlsplit

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
CONNECT_TIMEOUT_S = 3.0


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=1)
def hub_offline_reason() -> str | None:
    """None when the hub answers a TCP connection; else why it cannot be used (one short phrase)."""
    for name in OFFLINE_VARIABLES:
        if _truthy(os.environ.get(name)):
            return f"{name}={os.environ[name]}"
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    proxy = next((os.environ[v] for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
                  if os.environ.get(v)), None)
    target = urlsplit(proxy if proxy else endpoint)
    host = target.hostname or "huggingface.co"
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as err:
        return f"cannot connect to {host}:{port} ({err.strerror or type(err).__name__})"


def prepare_hub_access() -> str | None:
    """Call before any hub download. Offline: switch the hub libraries to offline mode (the local cache still
    serves) and return the reason; online: None."""
    reason = hub_offline_reason()
    if reason is None:
        return None
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[name] = "1"
    # Libraries read these at import time; when they are already imported, flip their constants too.
    for module_name, attribute in (("huggingface_hub.constants", "HF_HUB_OFFLINE"),
                                   ("datasets.config", "HF_HUB_OFFLINE"),
                                   ("datasets.config", "HF_DATASETS_OFFLINE")):
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attribute):
            setattr(module, attribute, True)
    return reason
