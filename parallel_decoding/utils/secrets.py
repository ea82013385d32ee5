"""Keep credentials out of everything a run writes: configs, logs, loggers' hyperparameters, W&B files.

Two nets. Config values under a secret-looking key (``api_key``, ``token``, ``password``...) are replaced; and
any text equal to the value of a secret-looking environment variable (``WANDB_API_KEY``, ``HF_TOKEN``, any
``*_TOKEN`` / ``*_KEY`` / ``*SECRET*`` / ``*PASSWORD*``) is masked wherever it appears, in configs and in log
records alike, so a token that reached a config through ``${oc.env:...}`` or an error message is caught too.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

REDACTED = "<redacted>"
# A whole name segment, so ``hf_token`` and ``wandb_api_key`` match but ``max_new_tokens`` does not.
SECRET_KEY = re.compile(r"(?:^|[_-])(?:api[_-]?key|access[_-]?key|token|secret|password|passwd|credentials?)(?:$|[_-])",
                        re.IGNORECASE)
SECRET_ENV = re.compile(r"(_TOKEN|_KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
# ``api_key_env: OPENAI_API_KEY`` names the variable that holds a key, which is not itself a secret.
NAMES_A_VARIABLE = re.compile(r"[_-]env(?:[_-]?var)?$", re.IGNORECASE)
MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") are settings, and masking them would garble text


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of secret-looking environment variables, longest first (so overlapping ones mask fully)."""
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if SECRET_ENV.search(k) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and bool(SECRET_KEY.search(key)) and not NAMES_A_VARIABLE.search(key)


def mask_text(text: str, secrets: list[str] | None = None) -> str:
    for secret in secret_values() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact(value: Any, secrets: list[str] | None = None) -> Any:
    """A copy of a plain container (dicts, lists, scalars) with secrets masked."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_key(k) and v not in (None, "") else redact(v, secrets))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, secrets) for v in value)
    if isinstance(value, str):
        return mask_text(value, secrets)
    return value


class RedactingFilter(logging.Filter):
    """Masks secret environment values in every record a handler writes (message and traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_values()
        if not secrets:
            return True
        message = record.getMessage()
        masked = mask_text(message, secrets)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text, secrets)
        return True


def install_log_redaction() -> None:
    """Attach the filter to every handler of the root logger (Hydra sets up console and file handlers per job)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
