"""Compare two checkpoints' weights: names, shapes and (optionally) values.

    python -m parallel_decoding.methods.llada.compare <dir A> <dir B> [--values] [--json out.json]

Each side is a saved HF directory (``model.safetensors`` or a sharded ``model.safetensors.index.json``) or a
single ``.safetensors`` file. Prints the names only in A, only in B, the common names whose shapes differ and,
with ``--values``, the largest absolute difference of every common tensor of equal shape. Exits 0 when names
and shapes (and values, with ``--values``) agree, 1 otherwise: a conversion check for scripts.
Tensors of different row counts (a vocabulary grown for the mask id) are compared on their shared rows too.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

from parallel_decoding.utils.cli import exit_on_user_error

log = logging.getLogger(__name__)


@dataclass
class WeightComparison:
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    shape_mismatch: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # with values: common tensors (shared rows)
    common: int = 0

    @property
    def same_layout(self) -> bool:
        return not (self.only_a or self.only_b or self.shape_mismatch)

    @property
    def same_values(self) -> bool:
        return all(d == 0.0 for d in self.max_abs_diff.values())


def weight_files(path: str | Path) -> list[Path]:
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / s for s in shards]
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    raise FileNotFoundError(f"{path}: no model.safetensors, sharded index or .safetensors file")


def _handles(path: str | Path) -> dict[str, Path]:
    names: dict[str, Path] = {}
    for file in weight_files(path):
        with safe_open(str(file), framework="pt") as handle:
            names.update({name: file for name in handle.keys()})
    return names


def _tensor(file: Path, name: str) -> torch.Tensor:
    with safe_open(str(file), framework="pt") as handle:
        return handle.get_tensor(name)


def _shape(file: Path, name: str) -> list[int]:
    with safe_open(str(file), framework="pt") as handle:
        return list(handle.get_slice(name).get_shape())


def compare_checkpoints(a: str | Path, b: str | Path, values: bool = False) -> WeightComparison:
    names_a, names_b = _handles(a), _handles(b)
    result = WeightComparison(only_a=sorted(set(names_a) - set(names_b)), only_b=sorted(set(names_b) - set(names_a)))
    for name in sorted(set(names_a) & set(names_b)):
        result.common += 1
        shape_a, shape_b = _shape(names_a[name], name), _shape(names_b[name], name)
        if shape_a != shape_b:
            result.shape_mismatch[name] = (shape_a, shape_b)
        if values:
            ta, tb = _tensor(names_a[name], name), _tensor(names_b[name], name)
            if ta.dim() != tb.dim() or ta.shape[1:] != tb.shape[1:]:
                continue
            rows = min(ta.shape[0], tb.shape[0]) if ta.dim() else None
            if rows is not None:
                ta, tb = ta[:rows], tb[:rows]
            result.max_abs_diff[name] = float((ta.float() - tb.float()).abs().max()) if ta.numel() else 0.0
    return result


def report(result: WeightComparison, a: str, b: str, values: bool) -> str:
    lines = [f"A: {a}", f"B: {b}", f"common tensors: {result.common}"]
    for title, names in (("only in A", result.only_a), ("only in B", result.only_b)):
        lines.append(f"{title}: {len(names)}")
        lines.extend(f"  {n}" for n in names)
    lines.append(f"shape differs: {len(result.shape_mismatch)}")
    lines.extend(f"  {n}: {sa} vs {sb}" for n, (sa, sb) in result.shape_mismatch.items())
    if values:
        changed = {n: d for n, d in result.max_abs_diff.items() if d != 0.0}
        lines.append(f"values differ (max |A-B| on shared rows): {len(changed)} of {len(result.max_abs_diff)}")
        lines.extend(f"  {n}: {d:.3g}" for n, d in sorted(changed.items(), key=lambda kv: -kv[1]))
    same = result.same_layout and (not values or result.same_values)
    lines.append("IDENTICAL" if same else "DIFFERENT")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--values", action="store_true", help="also compare values (max |A-B| per tensor)")
    parser.add_argument("--json", help="write the comparison as JSON here")
    args = parser.parse_args(argv)
    with exit_on_user_error(log):
        result = compare_checkpoints(args.a, args.b, values=args.values)
    print(report(result, args.a, args.b, args.values))
    if args.json:
        Path(args.json).write_text(json.dumps({**asdict(result), "same_layout": result.same_layout,
                                               "same_values": result.same_values}, indent=1))
    return 0 if result.same_layout and (not args.values or result.same_values) else 1


if __name__ == "__main__":
    sys.exit(main())
