"""Hydra-side plumbing of a training job: multirun-safe failure handling, DDP relaunch, the saved config tree.

- ``task_wrapper``: a job that raises is logged (and recorded in ``results.json``) instead of killing a
  multirun; single runs still fail loudly. Loggers (W&B) are closed per job either way.
- ``ddp_relaunch_as_job``: Lightning's DDP launcher starts ranks > 0 by re-running ``sys.argv`` with
  ``hydra.run.dir=<HydraConfig run.dir>``. In a multirun that command is the whole sweep and that dir is not the
  job's, so children would start their own sweeps and output dirs. We point both at the job: its own overrides,
  its own output dir (children then add ``hydra.output_subdir=null`` and write nothing but log lines).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rich
import rich.syntax
import rich.tree
import torch.distributed as dist
import yaml
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, read_write

from parallel_decoding.config import ConfigError, ModelUnavailableError
from parallel_decoding.utils.cli import user_error_message
from parallel_decoding.utils.secrets import install_log_redaction, redact

log = logging.getLogger(__name__)

EXPECTED_ERRORS = (ConfigError, ModelUnavailableError, FileNotFoundError)
RESULTS_FILE = "results.json"
CONFIG_TREE_FILE = "config_tree.log"


def hydra_mode() -> str | None:
    """``RUN`` or ``MULTIRUN`` inside a Hydra app, None when composed by hand (tests, notebooks)."""
    if not HydraConfig.initialized():
        return None
    mode = HydraConfig.get().mode
    return getattr(mode, "name", str(mode)) if mode is not None else None


def is_ddp_child() -> bool:
    """A rank > 0 process started by Lightning's launcher (or by torchrun / SLURM)."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("RANK", "0")) > 0


@contextmanager
def ddp_relaunch_as_job(output_dir: str | Path, entry_module: str = "parallel_decoding.train") -> Iterator[None]:
    """Make Lightning's DDP child command ``python -m <entry_module> <this job's overrides>`` in this job's dir.

    ``__main__`` is pointed at the entry module too: under the joblib or submitit launchers the process's main
    module is the launcher's worker, which is not what the ranks should run.
    """
    if not HydraConfig.initialized() or is_ddp_child():
        yield
        return
    hydra_cfg = HydraConfig.get()
    main = sys.modules["__main__"]
    saved_argv, saved_dir, saved_spec = list(sys.argv), hydra_cfg.run.dir, getattr(main, "__spec__", None)
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = str(Path(output_dir).resolve())
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    main.__spec__ = importlib.util.find_spec(entry_module)
    try:
        yield
    finally:
        sys.argv, main.__spec__ = saved_argv, saved_spec
        with read_write(hydra_cfg):
            hydra_cfg.run.dir = saved_dir


_DISTRIBUTED_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def distributed_state_per_job() -> Iterator[None]:
    """Leave no process group or launcher variables behind for the next job of an in-process multirun.

    Lightning's DDP launcher sets ``LOCAL_RANK`` & co. in the parent and keeps the process group; the next job
    would then believe its ranks already exist and talk to the previous job's exited children.
    """
    saved = {key: os.environ.get(key) for key in _DISTRIBUTED_ENV}
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain data, secrets masked: what loggers and results files receive."""
    return redact(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))


@rank_zero_only
def save_config_tree(cfg: DictConfig, output_dir: str | Path, print_tree: bool = True) -> None:
    """The composed config as a rich tree, printed and saved as ``config_tree.log`` in the run dir."""
    plain = plain_config(cfg)
    first = ["method", "model", "dataset", "data", "trainer", "callbacks", "logger", "hardware", "paths"]
    order = [k for k in first if k in plain] + [k for k in plain if k not in first]
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    for key in order:
        value = plain[key]
        text = yaml.safe_dump(value, sort_keys=False) if isinstance(value, (dict, list)) else str(value)
        tree.add(key, style="dim", guide_style="dim").add(rich.syntax.Syntax(text, "yaml"))
    if print_tree:
        rich.print(tree)
    path = Path(output_dir) / CONFIG_TREE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        rich.print(tree, file=handle)


@rank_zero_only
def write_results(output_dir: str | Path, results: dict[str, Any]) -> Path:
    """``results.json`` in the run dir, written atomically (a sweep reader never sees half a file)."""
    path = Path(output_dir) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(redact(results), indent=2, default=str))
    tmp.replace(path)
    return path


def close_loggers() -> None:
    """Finish the W&B run of this job, so the next job of a multirun starts its own. A job that never imported
    wandb has no run to finish (and is spared its ~2 s import)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def task_wrapper(fn: Callable[[DictConfig], dict[str, Any]]) -> Callable[[DictConfig], dict[str, Any]]:
    """Run one job; in a multirun a failure is logged and recorded, and the sweep moves on."""

    @functools.wraps(fn)
    def wrapped(cfg: DictConfig) -> dict[str, Any]:
        install_log_redaction()
        try:
            with distributed_state_per_job():
                return fn(cfg)
        except Exception as err:
            user_error = user_error_message(err)
            if user_error is not None:  # a bad config or a missing model: the message says it all
                if hydra_mode() == "MULTIRUN":  # a single run's entry point prints it (once)
                    log.error("training job failed: %s", user_error)
            else:
                log.exception("training job failed: %s: %s", type(err).__name__, err)
            output_dir = cfg.paths.output_dir
            write_results(output_dir, {"status": "failed", "error": f"{type(err).__name__}: {err}",
                                       "optimized_metric": cfg.get("optimized_metric"), "metric": math.nan})
            if hydra_mode() == "MULTIRUN":
                return {"status": "failed", "metric": math.nan}
            raise
        finally:
            close_loggers()

    return wrapped
