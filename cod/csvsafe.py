"""CSV files the library writes, safe to open in a spreadsheet: no user text runs as a formula.

A cell whose text starts with `=`, `+`, `-`, `@`, a tab or a carriage return (after any leading apostrophes) is
written with one more leading `'` (the OWASP advice for CSV injection); `restore_cell` removes exactly that one, so
an export imports back to the same texts, including texts that themselves start with apostrophes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _needs_quote(text: str) -> bool:
    return text.lstrip("'").startswith(FORMULA_STARTS)


def safe_cell(value: Any) -> Any:
    """`value` with a leading `'` when a spreadsheet would read it as a formula; non-strings unchanged."""
    return "'" + value if isinstance(value, str) and _needs_quote(value) else value


def restore_cell(value: Any) -> Any:
    """The inverse of `safe_cell` (for importing a CSV this module wrote)."""
    if isinstance(value, str) and value.startswith("'") and _needs_quote(value[1:]):
        return value[1:]
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells (and column names) are formula-safe; numbers stay numbers."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    out = frame.copy()
    for column in out.columns:
        if is_object_dtype(out[column]) or is_string_dtype(out[column]):
            out[column] = out[column].map(safe_cell)
    out.columns = [safe_cell(str(c)) for c in out.columns]
    return out


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write `frame` (without its index) as formula-safe CSV with CRLF line ends (RFC 4180)."""
    # With "\n" line ends the csv writer leaves a lone "\r" in a text unquoted, and readers then split the row there.
    safe_frame(frame).to_csv(path, index=False, lineterminator="\r\n")
    return Path(path)
