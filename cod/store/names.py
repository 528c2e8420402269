"""Project names: what the store accepts, and a valid, unused name made from any uploaded file's name."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import PurePosixPath, PureWindowsPath

MAX_NAME_CHARS = 100
DATA_SUFFIXES = (".gz", ".bz2", ".xz", ".csv", ".tsv", ".tab", ".txt", ".jsonl", ".ndjson", ".json", ".parquet", ".pq")


def project_name_for(filename: str, existing: Iterable[str] = (), suffix: str = "") -> str:
    """A project name from a file name (any length, any characters): readable, at most MAX_NAME_CHARS long,
    and not one of `existing` (compared ignoring case; numbered -2, -3, ... when taken). `suffix` is kept whole."""
    taken = {name.casefold() for name in existing}
    suffix = _clean(suffix, keep_edges=True)[: MAX_NAME_CHARS // 2]
    base = _clean(_stem(filename)) or "project"
    n = 1
    while True:
        number = "" if n == 1 else f"-{n}"
        room = MAX_NAME_CHARS - len(suffix) - len(number)
        name = base[:room].rstrip("-._ ") + suffix + number
        if name.casefold() not in taken:
            return name
        n += 1


def _stem(filename: str) -> str:
    """The file's name without folders (either kind of slash) or data suffixes (`reviews.csv.gz` -> `reviews`)."""
    name = PureWindowsPath(PurePosixPath(str(filename or "")).name).name
    while True:
        lower = name.lower()
        known = next((s for s in DATA_SUFFIXES if lower.endswith(s) and len(name) > len(s)), None)
        if known is None:
            return name
        name = name[: -len(known)]


def _clean(text: str, keep_edges: bool = False) -> str:
    """Printable, single-spaced text: control and format characters and runs of separators become one '-'."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else "-" for ch in text)
    text = re.sub(r"[\s/\\:*?\"<>|]+", "-", text)  # also safe as a file name on any system
    text = re.sub(r"-{2,}", "-", text)
    return text if keep_edges else text.strip("-._ ")
