"""From a ``dataset`` config node (or a path in it) to loaded question groups.

Every ``conf/dataset/*.yaml`` holds a ``loader`` node with a ``_target_``, so adding a dataset never touches
the entry points: they call ``load_groups(cfg.dataset)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import LoadedGroups, make_ids_unique

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout that holds parallel_decoding/ and conf/


def load_groups(dataset_cfg: DictConfig) -> LoadedGroups:
    """Instantiate ``dataset_cfg.loader``; pass the ``dataset`` node of a composed config."""
    if dataset_cfg._get_parent() is None:  # a dataset YAML loaded on its own: give ${dataset.*} a root
        dataset_cfg = OmegaConf.create({"dataset": dataset_cfg}).dataset
    loaded = instantiate(dataset_cfg.loader)
    if not isinstance(loaded, LoadedGroups):
        raise TypeError(f"{dataset_cfg.loader._target_} returned {type(loaded).__name__}, not LoadedGroups")
    loaded.groups = make_ids_unique(loaded.groups, loaded)  # every loader, even one that skips select_groups
    return loaded


def resolve_data_path(path: str | Path) -> Path:
    """Find a data file given in config: absolute as is; relative against the cwd, then the project root.

    The project root fallback lets ``dataset.path=../shared/data/...`` work however the run was launched.
    """
    given = Path(path).expanduser()
    tried = [given] if given.is_absolute() else [Path.cwd() / given, PROJECT_ROOT / given]
    for candidate in tried:
        if candidate.is_file():
            return candidate.resolve()
    raise FileNotFoundError(f"data file {str(path)!r} not found; tried " + ", ".join(str(p) for p in tried))


def read_data_text(path: str | Path) -> tuple[Path, str]:
    """A data file's text (UTF-8, an optional BOM skipped). A bad byte is one line naming the file and the byte
    offset: the error never carries the file's content."""
    resolved = resolve_data_path(path)
    data = resolved.read_bytes()
    try:
        return resolved, data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        offset = error.start
        line = data.count(b"\n", 0, offset) + 1
        raise ConfigError(f"data file {resolved} is not UTF-8 text: byte 0x{data[offset]:02x} at byte offset "
                          f"{offset} (line {line}) is {error.reason}; re-save it as UTF-8") from None


def json_error_line(source: Path | str, error: json.JSONDecodeError) -> str:
    """One line for a JSON syntax error: file, position and size (the document itself is never quoted)."""
    size = len(error.doc)
    at_end = not error.doc[error.pos:].strip() or error.msg.startswith("Unterminated")
    hint = " (it ends early: a truncated file?)" if at_end else ""
    return (f"data file {source} is not valid JSON{hint}: {error.msg} (line {error.lineno}, column {error.colno}, "
            f"character {error.pos} of {size})")


def load_json_file(path: str | Path) -> tuple[Path, Any]:
    """A local JSON document; a bad byte or a syntax error (e.g. a truncated file) is a ``ConfigError``."""
    resolved, text = read_data_text(path)
    try:
        return resolved, json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(json_error_line(resolved, error)) from None
