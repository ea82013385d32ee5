"""Where the Hydra configs live, and the resolvers they use. Import this before composing configs.

A checkout keeps ``conf/`` beside the package; an installed wheel carries it as ``parallel_decoding/conf``.
Either way entry points find it from any working directory.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent


class ConfigError(ValueError):
    """A run asked for something that does not exist or does not fit (unknown strategy, empty dataset).
    Entry points print the message and exit non-zero."""


def _find_config_dir() -> Path:
    for candidate in (PACKAGE_DIR / "conf", PACKAGE_DIR.parent / "conf"):
        if (candidate / "evaluate.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"no Hydra config dir found next to {PACKAGE_DIR}")


CONFIG_DIR = _find_config_dir()
PROJECT_ROOT = CONFIG_DIR.parent if CONFIG_DIR.parent != PACKAGE_DIR else Path.cwd()

if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
if not OmegaConf.has_resolver("coalesce"):  # ${coalesce:a,b}: a unless it is null (e.g. dataset.group_size)
    OmegaConf.register_new_resolver("coalesce", lambda first, second: second if first is None else first)


def available_options(group: str) -> list[str]:
    """Names selectable in a config group (the YAML files of ``conf/<group>/``)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def find_user_error(err: BaseException | None) -> BaseException | None:
    """The configuration mistake behind ``err``, looking through the wrappers ``hydra.utils.instantiate`` adds."""
    while err is not None:
        if isinstance(err, (ConfigError, FileNotFoundError)):
            return err
        err = err.__cause__
    return None


@contextmanager
def exit_on_user_error(log: logging.Logger) -> Iterator[None]:
    """Entry points: a configuration mistake prints one clear line and exits 2; real bugs keep their traceback.
    (``parallel_decoding.cli.guard_run`` without a run dir: also unwritable paths, and Ctrl-C as exit 130.)"""
    from parallel_decoding.cli import guard_run

    with guard_run(log, task_name=""):
        yield
