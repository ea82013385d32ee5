"""Where the Hydra configs live, and the resolvers they use. Import this before composing configs.

A checkout keeps ``conf/`` beside the package; an installed wheel carries it as ``parallel_decoding/conf``.
Either way entry points find it from any working directory.

Published checkpoints: ``train`` copies a method's checkpoint to ``published_checkpoint(...)``, one per dataset,
model and method variant, where ``evaluate auto_checkpoints=true`` finds it. Configs name that place with
``${published_checkpoint:<variant>}`` (a method's ``publish_dir``) and ``${published:<method>,<variant>}`` (a
strategy's ``published``: the place plus what the notice of a missing one needs), so its layout is written here only.

``evaluate``'s ``checkpoints`` block holds one key per strategy whose YAML reads ``checkpoints.<name>``, found in
``conf/strategy/`` (the ``checkpoints/by_strategy`` config registered here): ``checkpoints.<name>=<dir>`` works
without a ``+`` and a misspelt name is refused by Hydra, and a new strategy's key needs no other file edited.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
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


def published_checkpoint(checkpoint_dir: str | Path, dataset: str, model: str, variant: str) -> Path:
    """Where ``train`` publishes a variant's checkpoint for a dataset and model, and ``auto_checkpoints`` looks."""
    return Path(checkpoint_dir).expanduser() / dataset / f"{model}_{variant}"


def _published(method: str, variant: str, *, _root_: Any) -> dict[str, Any]:
    """``${published:<method>,<variant>}``: the run's published checkpoint of that variant and what names it; its
    path is None in a config without paths, dataset and model (a strategy YAML loaded alone)."""
    checkpoint_dir, dataset, model = (OmegaConf.select(_root_, key, default=None)
                                      for key in ("paths.checkpoint_dir", "dataset.name", "model.name"))
    path = None if None in (checkpoint_dir, dataset, model) else \
        str(published_checkpoint(checkpoint_dir, dataset, model, variant))
    return {"method": method, "variant": variant, "path": path, "dataset": dataset, "model": model}


if not OmegaConf.has_resolver("published"):
    OmegaConf.register_new_resolver("published", _published)
if not OmegaConf.has_resolver("published_checkpoint"):  # ${published_checkpoint:<variant>}: the path alone
    OmegaConf.register_new_resolver("published_checkpoint",
                                    lambda variant, *, _root_: _published("", variant, _root_=_root_)["path"])

_CHECKPOINT_KEY = re.compile(r"\$\{(?:oc\.select:)?checkpoints\.([A-Za-z0-9_]+)")


def checkpoint_keys() -> list[str]:
    """The names under ``checkpoints`` that some ``conf/strategy/*.yaml`` reads (``${oc.select:checkpoints.X}``)."""
    names: set[str] = set()
    for name in available_options("strategy"):
        text = OmegaConf.to_yaml(OmegaConf.load(CONFIG_DIR / "strategy" / f"{name}.yaml"))  # values, no comments
        names.update(_CHECKPOINT_KEY.findall(text))
    return sorted(names)


ConfigStore.instance().store(group="checkpoints", name="by_strategy",
                             node={name: None for name in checkpoint_keys()})
