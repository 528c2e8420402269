"""Files, written and read one way everywhere.

Writes are atomic: the content goes to a temporary file beside the target, renamed onto it only once complete, so a
crash never leaves half a file under the real name (a checkpoint, metrics.json, an export, a cache entry).
JSONL is one JSON object a line; a bad line raises `DataError` naming the file, the line number and the fix.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from cod.errors import CodError, DataError

__all__ = ["atomic_path", "parse_jsonl", "read_jsonl", "to_jsonable", "write_json", "write_jsonl", "write_text"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block ends, removed if it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer (two processes may save the same file) and hidden; same folder, so the rename is atomic.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def to_jsonable(value: Any) -> Any:
    """Plain JSON values: NaN and infinities as null, numpy scalars and arrays as numbers and lists, paths as text
    (what is left is written as its text by `write_json` / `write_jsonl`)."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":  # numpy scalars and arrays
        return to_jsonable(value.tolist())
    return value


def write_json(path: str | Path, obj: Any, indent: int | None = 2, sort_keys: bool = True) -> Path:
    """Write one JSON document atomically (see `to_jsonable` for what is converted)."""
    text = json.dumps(to_jsonable(obj), indent=indent, sort_keys=sort_keys, ensure_ascii=False, default=str)
    return write_text(path, text + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write one JSON object a line, atomically; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(to_jsonable(row), ensure_ascii=False, default=str) + "\n")
    return Path(path)


T = TypeVar("T")
_FIX = 'Each line must be one JSON object, e.g. {"text": ..., "label": ...}'


def json_int(literal: str) -> int | str:
    """A JSON integer for `json.loads(parse_int=...)`: one beyond Python's 4,300-digit int() limit stays its text
    (json.loads would raise a ValueError that is not a JSONDecodeError)."""
    return int(literal) if len(literal) <= 4000 else literal


def parse_jsonl(text: str, name: str, fix: str = _FIX) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of JSONL text; `name` and `fix` go into the errors."""
    rows = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, parse_int=json_int)
        except json.JSONDecodeError as err:
            raise DataError(f"{name} line {lineno} is not valid JSON ({err.msg}): {line[:80]!r}. {fix}.") from err
        if not isinstance(value, dict):
            raise DataError(f"{name} line {lineno} is a JSON {type(value).__name__}, not an object. {fix}.")
        rows.append((lineno, value))
    return rows


def read_jsonl(path: str | Path, fix: str = _FIX, convert: Callable[[dict[str, Any]], T] | None = None) -> list:
    """The objects of a JSONL file, each passed through `convert` when given; an unreadable file, a bad line or a
    record `convert` rejects (KeyError, TypeError, ValueError) is a `DataError` naming the file, the line and `fix`."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise DataError(f"{path} does not exist: check the path.") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): is it a binary file?") from err
    rows = parse_jsonl(text, str(path), fix)
    if convert is None:
        return [row for _, row in rows]
    out = []
    for lineno, row in rows:
        try:
            out.append(convert(row))
        except CodError:
            raise
        except (KeyError, TypeError, ValueError) as err:
            kind = type(err).__name__
            raise DataError(f"{path} line {lineno} is not a valid record ({kind}: {err}). {fix}.") from err
    return out
