"""``manifest.json``: what a run needs to be rerun and what it ran on, beside its config and results.

Written into every ``evaluate`` and ``train`` run dir when the run starts (an interrupted run has one too):
the entry point and its Hydra overrides (the command ``reproduce`` runs again), the working directory they are
relative to, the checkout's git commit and whether the tree had uncommitted changes, and the environment:
Python, the key packages' versions, torch with its CUDA / cuDNN, the CPU model and the GPUs. A resumed run keeps
the first manifest and appends the resuming environment under ``resumed``.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from hydra.core.hydra_config import HydraConfig

from parallel_decoding.config import PROJECT_ROOT, ConfigError
from parallel_decoding.utils.secrets import redact

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
KEY_PACKAGES = ("parallel_decoding", "torch", "transformers", "tokenizers", "safetensors", "accelerate", "peft",
                "lightning", "torchmetrics", "datasets", "hydra-core", "omegaconf", "numpy", "scipy", "lm-eval",
                "vllm")
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "CUBLAS_WORKSPACE_CONFIG",
            "PARALLEL_DECODING_CACHE", "HF_HUB_OFFLINE")
# Overrides that name where and how this particular run was written, not what it computed.
RUN_LOCAL_OVERRIDES = ("hydra.run.dir=", "hydra.sweep.dir=", "hydra.sweep.subdir=", "resume=", "hydra.job.num=")


def _version(package: str) -> str | None:
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_environment() -> dict[str, Any]:
    """The facts about this process's software and hardware that can change a result."""
    # lazy: torch (~2 s) only when an environment is recorded: reading manifests (report, reproduce) does without it
    import torch

    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in KEY_PACKAGES},
        "torch": {"version": torch.__version__, "cuda": torch.version.cuda,
                  "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                  "cuda_available": cuda, "threads": torch.get_num_threads()},
        "cpu": {"model": _cpu_model(), "count": os.cpu_count()},
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "env": {name: os.environ[name] for name in ENV_VARS if name in os.environ},
    }


def git_state(root: Path = PROJECT_ROOT) -> dict[str, Any] | None:
    """Commit, branch and dirtiness of the checkout this package runs from; None outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        changed = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
        branch = git("rev-parse", "--abbrev-ref", "HEAD").strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "branch": branch, "dirty": bool(changed),
            "changed_files": [line[3:] for line in changed[:50]]}


def hydra_command() -> tuple[list[str] | None, str]:
    """This Hydra job's own overrides and the directory it was started in (None / cwd outside a Hydra app)."""
    if not HydraConfig.initialized():
        return None, os.getcwd()
    hydra_cfg = HydraConfig.get()
    return list(hydra_cfg.overrides.task), str(hydra_cfg.runtime.cwd)


def build_manifest(entry_point: str, overrides: Sequence[str] | None = None, cwd: str | None = None) -> dict[str, Any]:
    hydra_overrides, hydra_cwd = hydra_command()
    overrides = list(overrides) if overrides is not None else hydra_overrides
    return redact({
        "manifest_version": MANIFEST_VERSION,
        "entry_point": entry_point,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": {"overrides": overrides, "argv": list(sys.argv), "cwd": cwd or hydra_cwd,
                    "executable": sys.executable},
        "git": git_state(),
        "environment": collect_environment(),
    })


def write_manifest(run_dir: str | Path, entry_point: str, overrides: Sequence[str] | None = None,
                   resume: bool = False) -> Path:
    """Write ``manifest.json`` (atomically); on ``resume`` an existing one is kept and the new environment
    appended under ``resumed``."""
    path = Path(run_dir) / MANIFEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = build_manifest(entry_point, overrides)
    if resume and path.is_file():
        first = json.loads(path.read_text())
        first.setdefault("resumed", []).append({k: manifest[k] for k in ("created", "command", "git",
                                                                          "environment")})
        manifest = first
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str))
    tmp.replace(path)
    return path


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} has no {MANIFEST_FILE} (runs write one since the reproduction manifests "
                          f"were added; pass an evaluate or train run dir)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from err
    if not manifest.get("entry_point") or manifest.get("command", {}).get("overrides") is None:
        raise ConfigError(f"{path} records no entry point and overrides (a run started outside its Hydra app): "
                          f"it cannot be rerun")
    return manifest


def rerun_overrides(manifest: dict[str, Any]) -> list[str]:
    """The recorded overrides less the ones that only placed that run (its dir, resume)."""
    return [o for o in manifest["command"]["overrides"] if not o.lstrip("+~").startswith(RUN_LOCAL_OVERRIDES)]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def environment_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, recorded, current)`` for every environment or git fact that differs (``changed_files`` aside)."""
    old = _flatten({"git": recorded.get("git") or {}, "environment": recorded.get("environment") or {}})
    new = _flatten({"git": current.get("git") or {}, "environment": current.get("environment") or {}})
    skip = ("git.changed_files",)
    return [(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
            if k not in skip and old.get(k) != new.get(k)]
