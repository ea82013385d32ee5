"""From a ``dataset`` config node (or a path in it) to loaded question groups.

Every ``conf/dataset/*.yaml`` holds a ``loader`` node with a ``_target_``, so adding a dataset never touches
the entry points: they call ``load_groups(cfg.dataset)``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from parallel_decoding.data.schema import LoadedGroups, make_ids_unique

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout that holds parallel_decoding/ and conf/


def load_groups(dataset_cfg: DictConfig) -> LoadedGroups:
    """Instantiate ``dataset_cfg.loader``; pass the ``dataset`` node of a composed config."""
    from hydra.utils import instantiate  # hydra is only needed here, not by the loaders themselves

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
