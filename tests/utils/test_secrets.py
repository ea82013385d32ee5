"""Credentials never reach configs, results or logs."""

from __future__ import annotations

import logging

from parallel_decoding.utils.secrets import REDACTED, RedactingFilter, redact, secret_values


def test_secret_keys_and_env_secret_values_are_masked(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "secret-xyz-123")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_abc")
    config = {"logger": {"wandb": {"api_key": "whatever", "notes": "run with hf_secret_abc"}},
              "generation": {"max_new_tokens": 32}, "auth": {"hf_token": "x" * 8}, "tags": ["secret-xyz-123"]}
    clean = redact(config)
    assert clean["logger"]["wandb"]["api_key"] == REDACTED
    assert clean["logger"]["wandb"]["notes"] == f"run with {REDACTED}"
    assert clean["auth"]["hf_token"] == REDACTED and clean["tags"] == [REDACTED]
    assert clean["generation"]["max_new_tokens"] == 32  # "tokens" is not a token
    assert "hf_secret_abc" in secret_values() and "secret-xyz-123" in secret_values()


def test_the_name_of_a_key_variable_is_kept_but_its_value_is_not(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdef")
    clean = redact({"backend": {"api_key_env": "OPENAI_API_KEY", "api_key": "sk-live-abcdef"},
                    "judge": {"api_key_env": "sk-live-abcdef"}})
    assert clean["backend"] == {"api_key_env": "OPENAI_API_KEY", "api_key": REDACTED}
    assert clean["judge"]["api_key_env"] == REDACTED  # a key pasted where its name belongs is still masked


def test_log_records_are_masked(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_abc")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(handler)
    try:
        logger.error("token %s leaked", "hf_secret_abc")
        try:
            raise RuntimeError("bad token hf_secret_abc")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert records and not any("hf_secret_abc" in r for r in records)
    assert REDACTED in records[0] and "bad token" in records[1]
