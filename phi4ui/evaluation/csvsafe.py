"""CSV that a spreadsheet opens as data, never as formulas.

A cell starting with `=`, `+`, `-` or `@` (or a tab or carriage return) is a formula to
Excel, LibreOffice and Google Sheets, and a formula can fetch URLs or run commands. Every
CSV phi4ui writes goes through `write_rows`, which prefixes such text cells with a single
quote, as OWASP advises. Numbers stay numbers: numeric values, and text that is just a
number such as `-3.5`, are written unchanged.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet should see it: text that would start a formula gets a
    leading single quote; everything else is unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def write_rows(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """A CSV file with a header of `columns` and one line per row, every cell made safe."""
    # "replace": a character that cannot be encoded must not cost the whole file.
    with path.open("w", newline="", encoding="utf-8", errors="replace") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: safe_cell(v) for k, v in row.items()} for row in rows)
