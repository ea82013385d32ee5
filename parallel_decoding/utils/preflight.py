"""Config checks that run before the heavy imports (torch, transformers, lightning: 10-60 s on a busy machine),
so a misspelt strategy or a value of the wrong type is reported in about a second, naming the key.

Types come from the code itself, without importing it: every ``_target_`` inside this package is looked up in
its source with ``ast`` and each config key passed to it is checked against the parameter's annotation (only
``int``, ``float``, ``bool`` and their ``| None`` forms are checked; anything else is left to the code).
A key set through an interpolation (``context_count: ${dataset.context_count}``) is reported under the key the
user sets (``dataset.context_count``).
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf

from parallel_decoding.config import CONFIG_DIR, PACKAGE_DIR, ConfigError, available_options

PACKAGE = "parallel_decoding"
# Config nodes splatted into a class without a ``_target_`` (``GenerationSettings(**cfg.generation)``).
TYPED_NODES = {"generation": "parallel_decoding.backends.hf.GenerationSettings"}
# Entry-point keys read directly by the entry points (no ``_target_`` to take their types from).
ENTRY_KEYS: dict[str, dict[str, frozenset]] = {
    "evaluate": {"seed": frozenset({int}), "resume": frozenset({bool}), "auto_checkpoints": frozenset({bool})},
    "train": {"seed": frozenset({int, type(None)}), "train": frozenset({bool}),
              "validate_before_fit": frozenset({bool}), "test": frozenset({bool}), "export": frozenset({bool}),
              "trainer.max_steps": frozenset({int, type(None)}), "trainer.max_epochs": frozenset({int, type(None)}),
              "trainer.accumulate_grad_batches": frozenset({int})},
    "serve": {"port": frozenset({int}), "max_new_tokens": frozenset({int}), "max_body_bytes": frozenset({int}),
              "max_waiting": frozenset({int}), "max_requests": frozenset({int, type(None)}),
              "idle_timeout_s": frozenset({int, float, type(None)})},
}
_SIMPLE = {"int": int, "float": float, "bool": bool, "None": type(None)}
_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false"}
_INTERPOLATION = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


def check_config(cfg: DictConfig, task: str) -> None:
    """Raise one ``ConfigError`` listing every problem found (names, types, budgets) in ``cfg`` for ``task``."""
    problems: list[str] = []
    if task == "evaluate":
        problems += strategy_name_problems(cfg)
        problems += strategy_option_problems(cfg)
    problems += type_problems(cfg, task)
    if task == "train":
        problems += training_budget_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))


# -- names ---------------------------------------------------------------------------------------------------------
def strategy_name_problems(cfg: DictConfig) -> list[str]:
    names = cfg.get("strategies")
    if not isinstance(names, (list, ListConfig)):
        return [f"strategies must be a list of names, e.g. 'strategies=[batch,independent]', got {names!r}"]
    known = available_options("strategy")
    problems = []
    unknown = [name for name in names if not isinstance(name, str) or name not in known]
    if unknown:
        problems.append(f"unknown strateg{'y' if len(unknown) == 1 else 'ies'} "
                        f"{', '.join(repr(n) for n in unknown)}; available: {', '.join(known)}")
    if len(set(map(str, names))) != len(names):
        problems.append(f"strategies lists a name twice: {list(names)}")
    return problems


def strategy_option_problems(cfg: DictConfig) -> list[str]:
    """Types of ``+strategy.<name>.<key>=...`` overrides, against the strategy class named in its YAML."""
    overrides, problems = cfg.get("strategy") or {}, []
    for name in overrides:
        path = CONFIG_DIR / "strategy" / f"{name}.yaml"
        node = overrides[name]
        if not path.is_file() or not isinstance(node, DictConfig):
            continue
        annotations = target_annotations(str(OmegaConf.load(path).get("_target_", ""))) or {}
        for key in node:
            if key in annotations:
                problems += _check_value(node, key, annotations[key], f"strategy.{name}.{key}")
    return problems


# -- budgets -------------------------------------------------------------------------------------------------------
def training_budget_problems(cfg: DictConfig) -> list[str]:
    """``trainer.max_steps`` 0 (or below -1) trains nothing; -1 needs ``trainer.max_epochs``."""
    trainer = cfg.get("trainer") or {}
    steps, epochs = _get(trainer, "max_steps"), _get(trainer, "max_epochs")
    if not isinstance(steps, int) or isinstance(steps, bool) or cfg.get("train") is False:
        return []  # a wrong type is reported by type_problems
    if steps == 0 or steps < -1:
        return [f"trainer.max_steps={steps} trains nothing: give a positive number of optimizer steps "
                f"(e.g. trainer.max_steps=300), or trainer.max_steps=-1 with trainer.max_epochs=N"]
    if steps == -1 and (epochs is None or (isinstance(epochs, int) and epochs < 1)) \
            and not _get(trainer, "fast_dev_run"):
        return [f"trainer.max_steps=-1 needs trainer.max_epochs >= 1 (got {epochs}): set one of the two"]
    return []


# -- types ---------------------------------------------------------------------------------------------------------
def type_problems(cfg: DictConfig, task: str) -> list[str]:
    problems = []
    for dotted, allowed in ENTRY_KEYS.get(task, {}).items():
        parent_key, _, key = dotted.rpartition(".")
        node = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if isinstance(node, DictConfig) and key in node:
            problems += _check_value(node, key, allowed, dotted)
    for path, node in _typed_nodes(cfg):
        target = node.get("_target_") if "_target_" in node else TYPED_NODES.get(path)
        annotations = target_annotations(str(target)) if target else None
        if not annotations:
            continue
        for key in node:
            if isinstance(key, str) and not key.startswith("_") and key in annotations:
                problems += _check_value(node, key, annotations[key], f"{path}.{key}" if path else key)
    return problems


def _typed_nodes(cfg: DictConfig, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every dict node of ``cfg`` with a ``_target_`` in this package (or listed in TYPED_NODES)."""
    for key in cfg:
        try:
            child = cfg._get_node(key)
        except Exception:  # noqa: BLE001 - a broken node is reported by whoever uses it
            continue
        child_path = f"{path}.{key}" if path else str(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            if child_path in TYPED_NODES or str(child.get("_target_", "")).startswith(PACKAGE + "."):
                yield child_path, child
            yield from _typed_nodes(child, child_path)


def _check_value(node: DictConfig, key: str, allowed: frozenset, full_key: str) -> list[str]:
    try:
        value = node[key]
    except Exception:  # noqa: BLE001 - unresolvable (missing value, broken interpolation): left to the code
        return []
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value)
    if _fits(value, allowed):
        return []
    wanted = " or ".join(_TYPE_WORDS[t] for t in (int, float, bool) if t in allowed and
                         not (t is int and float in allowed))
    if type(None) in allowed:
        wanted += " (or null)"
    return [f"{_user_key(node, key, full_key, value)} must be {wanted}, got {value!r}"]


def _fits(value: Any, allowed: frozenset) -> bool:
    if value is None:
        return type(None) in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    if isinstance(value, float):
        return float in allowed
    return False


def _user_key(node: DictConfig, key: str, full_key: str, value: Any) -> str:
    """The key a user sets: the target of a plain interpolation (``${dataset.context_count}``), else ``full_key``."""
    raw = node._get_node(key)._value()
    if isinstance(raw, str):
        root = node._get_root()
        for ref in _INTERPOLATION.findall(raw):
            try:
                if OmegaConf.select(root, ref, throw_on_resolution_failure=False) == value:
                    return ref
            except Exception:  # noqa: BLE001
                continue
    return full_key


def _get(node: Any, key: str) -> Any:
    try:
        return node.get(key)
    except Exception:  # noqa: BLE001
        return None


# -- annotations from source -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def target_annotations(target: str) -> dict[str, frozenset] | None:
    """``{parameter: allowed types}`` of a function or class named by ``target`` (only simple annotations);
    None when it cannot be found in this package's source."""
    found = _find_definition(target, depth=0)
    if found is None:
        return None
    definition, module = found
    if isinstance(definition, ast.FunctionDef):
        return _function_annotations(definition)
    return _class_annotations(definition, module, depth=0)


def _module_file(module: str) -> Path | None:
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    relative = Path(*module.split(".")[1:])
    for candidate in (PACKAGE_DIR / relative.with_suffix(".py"), PACKAGE_DIR / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def _parse(module: str) -> ast.Module | None:
    path = _module_file(module)
    return ast.parse(path.read_text(encoding="utf-8")) if path is not None else None


def _find_definition(target: str, depth: int) -> tuple[ast.AST, str] | None:
    module, _, name = target.rpartition(".")
    tree = _parse(module) if module else None
    if tree is None or depth > 4:
        return None
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.ClassDef)) and statement.name == name:
            return statement, module
    for statement in tree.body:  # re-exported: ``from parallel_decoding.x import name``
        if isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
            for alias in statement.names:
                if (alias.asname or alias.name) == name:
                    return _find_definition(f"{statement.module}.{alias.name}", depth + 1)
    return None


def _function_annotations(function: ast.FunctionDef, skip_self: bool = False) -> dict[str, frozenset]:
    args = [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]
    if skip_self and args:
        args = args[1:]
    out = {}
    for arg in args:
        allowed = _allowed_types(arg.annotation)
        if allowed:
            out[arg.arg] = allowed
    return out


def _class_annotations(cls: ast.ClassDef, module: str, depth: int) -> dict[str, frozenset] | None:
    for statement in cls.body:
        if isinstance(statement, ast.FunctionDef) and statement.name == "__init__":
            return _function_annotations(statement, skip_self=True)
    fields = {s.target.id: _allowed_types(s.annotation) for s in cls.body
              if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
    if fields:  # a dataclass
        return {k: v for k, v in fields.items() if v}
    for base in cls.bases:  # the inherited __init__
        if isinstance(base, ast.Name) and depth < 4:
            found = _find_definition(f"{module}.{base.id}", depth=0)
            if found is not None and isinstance(found[0], ast.ClassDef):
                return _class_annotations(found[0], found[1], depth + 1)
    return None


def _allowed_types(annotation: ast.AST | None) -> frozenset | None:
    """``int`` -> {int}; ``float | None`` / ``Optional[float]`` -> {float, None}; anything else -> None."""
    if annotation is None:
        return None
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):  # a quoted annotation
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return None
    if isinstance(annotation, ast.Name) and annotation.id in _SIMPLE:
        return frozenset({_SIMPLE[annotation.id]})
    if isinstance(annotation, ast.Constant) and annotation.value is None:
        return frozenset({type(None)})
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        left, right = _allowed_types(annotation.left), _allowed_types(annotation.right)
        return left | right if left and right else None
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name):
        if annotation.value.id == "Optional":
            inner = _allowed_types(annotation.slice)
            return inner | {type(None)} if inner else None
        if annotation.value.id == "Union" and isinstance(annotation.slice, ast.Tuple):
            parts = [_allowed_types(e) for e in annotation.slice.elts]
            return frozenset().union(*parts) if all(parts) else None
    return None


# -- devices (after torch is imported) ---------------------------------------------------------------------------
def check_devices(cfg: DictConfig) -> None:
    """``hardware=gpu`` (or ddp/fsdp) on a machine where torch sees no CUDA GPU, or fewer than asked: one line."""
    hardware = cfg.get("hardware") or {}
    device, accelerator = str(_get(hardware, "device") or ""), str(_get(hardware, "accelerator") or "")
    if not (device.startswith("cuda") or accelerator in ("gpu", "cuda")):
        return
    import torch  # lazy: torch (~2 s) only for hardware checks: config checks run before it loads

    name = _get(hardware, "name") or "gpu"
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available == 0:
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise ConfigError(f"hardware={name} needs a CUDA GPU, but torch {torch.__version__} ({build}) sees none; "
                          f"use hardware=cpu, or install a CUDA build of torch (launchers/setup_env.sh)")
    wanted = _get(hardware, "devices")
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > available:
        raise ConfigError(f"hardware.devices={wanted} but only {available} CUDA GPU(s) are visible here")
