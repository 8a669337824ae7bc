"""Small parts: no module of the package over 400 lines, no function over 60. A module that
grows past it holds two jobs; a function that does, holds several steps worth naming."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "phi4ui"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Loaded by transformers as the tiny checkpoint's remote code: it mirrors the real model's
# processor file, and is not phi4ui's code.
NOT_OURS = {PACKAGE / "tinymodel" / "remote" / "processing_phi4mm.py"}


def modules() -> list[Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py")) if path not in NOT_OURS]


def long_functions(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: "
                             f"{length} lines")
    return found


def test_no_module_is_over_400_lines() -> None:
    long = [f"{path.relative_to(PACKAGE)}: {count} lines" for path in modules()
            if (count := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert long == []


def test_no_function_is_over_60_lines() -> None:
    assert [entry for path in modules() for entry in long_functions(path)] == []
