"""Test helpers: the real Hydra configs composed in-process, and entry points run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from parallel_decoding.config import CONFIG_DIR, PROJECT_ROOT

SQUAD_HALF_A = PROJECT_ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1-half-a.json"


def compose_config(config_name: str, overrides: list[str] | None = None, output_dir: Path | None = None) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides or [])
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg


def run_module(module: str, *args: str, cwd: Path | None = None, env: dict | None = None,
               timeout: int = 600) -> subprocess.CompletedProcess:
    """Run an entry point the way a user does (a fresh process, the real Hydra app)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or PROJECT_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
