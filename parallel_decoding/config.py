"""Where the Hydra configs live, and the resolvers they use. Import this before composing configs.

A checkout keeps ``conf/`` beside the package; an installed wheel carries it as ``parallel_decoding/conf``.
Either way entry points find it from any working directory.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent


class ConfigError(ValueError):
    """A run asked for something that does not exist or does not fit (unknown strategy, empty dataset).
    Entry points print the message and exit non-zero."""


class ModelUnavailableError(ConfigError):
    """A configured model cannot be loaded here (offline and not cached, bad path). Entry points print the
    message and exit non-zero instead of showing a traceback."""


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
