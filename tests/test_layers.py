"""The package's layers hold: import-linter's contracts (pyproject.toml) are kept, and an import inside a function
is there only to keep a heavy or optional dependency off the import path, saying so (``# lazy: <why>``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "parallel_decoding"
PYPROJECT = PACKAGE.parent / "pyproject.toml"
MARK = "# lazy:"


def test_import_contracts_are_kept():
    pytest.importorskip("importlinter.cli", reason="import-linter is a dev dependency")
    # its own process: lint-imports prints through rich, and earlier in-process Hydra apps may have swapped streams
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
                             "--no-cache"], cwd=PYPROJECT.parent, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


def function_imports(source: str) -> list[tuple[int, int]]:
    """(first line, last line) of every import statement inside a function body."""
    found: list[tuple[int, int]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and in_function:
                found.append((child.lineno, child.end_lineno or child.lineno))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(source), False)
    return found


def unexplained(source: str) -> list[int]:
    """Lines of function-level imports with no ``# lazy:`` comment on them, above them, or on the import just
    above them (one comment may cover a block of consecutive imports)."""
    lines = source.splitlines()
    imports = function_imports(source)
    explained: set[int] = set()
    out = []
    for first, last in imports:
        above = lines[first - 2].strip() if first >= 2 else ""
        own = any(MARK in lines[i - 1] for i in range(first, last + 1))
        covered = (above.startswith(MARK) or own or (first - 1) in explained
                   or any(end == first - 1 and start in explained for start, end in imports))
        if covered:
            explained.update(range(first, last + 1))
        else:
            out.append(first)
    return out


def test_the_lazy_import_rule_sees_what_it_should():
    source = (
        "def f():\n"
        "    # lazy: torch takes seconds to import\n"
        "    import torch\n"
        "    import numpy\n"
        "\n"
        "    import json\n"
        "def g():\n"
        "    from os import path  # lazy: optional\n"
    )
    assert unexplained(source) == [6]


def test_function_level_imports_say_why():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line in unexplained(path.read_text()):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    assert not offenders, "imports inside functions without a '# lazy: <why>' comment:\n" + "\n".join(offenders)
