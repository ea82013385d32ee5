"""The settings that decide a run's answers, kept in the run dir so ``resume=true`` can refuse a changed run.

A resume appends to the answers already written; with another ``generation.max_new_tokens``, dataset draw,
model, backend, strategy option or seed it would mix two experiments under one ``results.json``. The first run
stores every resolved setting in ``run_settings.json``; a resume compares and refuses, naming the keys, before
any work. Everything counts as answer-affecting except the keys listed here (where files go, logging, how the
work is spread over processes, network patience), so a new setting is protected without being listed.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from parallel_decoding.config import ConfigError
from parallel_decoding.utils.secrets import redact

SETTINGS_FILE = "run_settings.json"

# Dotted keys (fnmatch patterns) that never change an answer.
NOT_ANSWER_AFFECTING = (
    "hydra", "hydra.*", "paths", "paths.*", "logger", "logger.*", "resume", "tags", "tags.*", "task_name",
    "print_config", "debug", "debug.*",
    "hardware.devices", "hardware.num_nodes", "hardware.strategy",  # sharding gives the single-process answers
    "*.cache_dir",  # where a model is cached, not which model
    "*.max_concurrency", "*.timeout_s", "*.max_retries", "*.api_key_env",  # network patience and credentials
)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.c": leaf}``; lists are leaves (compared whole)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def answer_settings(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config, flattened, without the keys that cannot change an answer (secrets masked)."""
    plain = redact(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))
    return {key: value for key, value in flatten(plain).items()
            if not any(fnmatch.fnmatchcase(key, pattern) for pattern in NOT_ANSWER_AFFECTING)}


def differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key (old -> new)`` for every answer-affecting difference.

    Strategies may be added on a resume (they run on every group); dropping one is a difference. Options of a
    strategy are compared only when both runs have it.
    """
    old_names, new_names = list(stored.get("strategies") or []), list(current.get("strategies") or [])
    both = set(old_names) & set(new_names)
    out = []
    if not set(old_names) <= set(new_names):
        out.append(f"strategies ({_short(old_names)} -> {_short(new_names)}: a resume may add strategies, "
                   f"not drop them)")
    for key in sorted(set(stored) | set(current)):
        if key == "strategies":
            continue
        if key.startswith("strategy.") and key.split(".")[1] not in both:
            continue
        old, new = stored.get(key, "<unset>"), current.get(key, "<unset>")
        if old != new:
            out.append(f"{key} ({_short(old)} -> {_short(new)})")
    return out


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_resume_settings(run_dir: Path, current: dict[str, Any], has_results: bool) -> None:
    """Refuse a resume whose settings differ from the stored ones; store them when this run starts the dir.

    ``current`` becomes the stored record after a check passes, so strategies added on a resume are checked
    the next time too.
    """
    path = Path(run_dir) / SETTINGS_FILE
    if has_results:
        if not path.is_file():
            raise ConfigError(
                f"{run_dir} holds results but no {SETTINGS_FILE} (made by an older version), so resume=true cannot "
                f"check that the settings match; start a new hydra.run.dir")
        try:
            stored = json.loads(path.read_text())["settings"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"{path} is unreadable ({error}); resume=true cannot check the settings match; "
                              f"start a new hydra.run.dir") from error
        changed = differences(stored, current)
        if changed:
            raise ConfigError(
                f"resume=true but {len(changed)} answer-affecting setting(s) differ from the run in {run_dir}: "
                + "; ".join(changed) + ". Resume with the original values, or start a new hydra.run.dir")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"settings": current}, indent=1, ensure_ascii=False, default=str))
    tmp.replace(path)
