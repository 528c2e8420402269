"""A disk cache of JSON values keyed by a dict: proposers cache LLM replies and search results with it.

Each entry is one small JSON file named by the sha256 of the canonical key (sorted keys, compact separators),
sharded by its first two hex digits. Writes go to a temporary file in the same folder and are renamed into
place, so a run killed half-way never leaves a torn entry, and the next run resumes from what was written.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from cod.errors import ConfigError
from cod.io import write_text

log = logging.getLogger(__name__)


def canonical(key: dict[str, Any]) -> str:
    """The JSON text a key is hashed from: the same dict always gives the same text."""
    try:
        return json.dumps(key, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"A cache key must be plain JSON (str, numbers, lists, dicts), got {key!r}: {err}.") from err


def key_hash(key: dict[str, Any]) -> str:
    """sha256 hex digest of the canonical key."""
    return hashlib.sha256(canonical(key).encode("utf-8")).hexdigest()


class DiskCache:
    """JSON values on disk, keyed by a dict; safe to share between threads and processes."""

    def __init__(self, dir: str | Path):
        self.dir = Path(dir).expanduser()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                f"Cannot create the cache folder {str(self.dir)!r}: {err}. Choose a writable folder."
            ) from err

    def __repr__(self) -> str:
        return f"DiskCache({str(self.dir)!r})"

    def path(self, key: dict[str, Any]) -> Path:
        """The file an entry for `key` lives in (it may not exist)."""
        digest = key_hash(key)
        return self.dir / digest[:2] / f"{digest}.json"

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """The value stored for `key`, or None when absent or unreadable."""
        path = self.path(key)
        try:
            with open(path, encoding="utf-8") as f:
                entry = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            # A damaged entry is a miss: the caller recomputes it and `put` overwrites the file.
            log.warning("Ignoring unreadable cache entry %s: %s", path, err)
            return None
        # The stored key guards against a file copied or renamed by hand (and, in theory, a hash collision).
        if not isinstance(entry, dict) or entry.get("key") != json.loads(canonical(key)):
            log.warning("Ignoring cache entry %s: it was written for another key", path)
            return None
        value = entry.get("value")
        return value if isinstance(value, dict) else None

    def put(self, key: dict[str, Any], value: dict[str, Any]) -> Path:
        """Store `value` for `key` atomically (temporary file + rename); returns the entry's path."""
        if not isinstance(value, dict):
            raise ConfigError(
                f"A cache value must be a dict, got {type(value).__name__}: wrap it as {{'value': ...}}."
            )
        path = self.path(key)
        text = json.dumps({"key": json.loads(canonical(key)), "value": value}, ensure_ascii=False, indent=1)
        write_text(path, text)
        return path

    def __contains__(self, key: dict[str, Any]) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self.dir.glob("??/*.json"))

    def clear(self) -> int:
        """Delete every entry; returns how many were deleted."""
        count = 0
        for path in self.dir.glob("??/*.json"):
            path.unlink(missing_ok=True)
            count += 1
        return count
