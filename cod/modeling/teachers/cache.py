"""The persistent score cache: what a teacher said about a text, kept in one SQLite file under `$COD_HOME/cache`.

A row is keyed by the teacher's fingerprint (model, endpoint, prompt version; never a key) and the text's sha256,
so a text is scored once per teacher and prompt across runs and processes. The file is bounded: past `max_rows`
the least recently written rows go. SQLite's own locking makes it safe to share between threads and processes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cod.errors import ConfigError

MAX_ROWS = 500_000  # about 100 MB of small JSON rows
_SCHEMA = """CREATE TABLE IF NOT EXISTS scores (
    teacher TEXT NOT NULL, text_sha TEXT NOT NULL, value TEXT NOT NULL, written REAL NOT NULL,
    PRIMARY KEY (teacher, text_sha))"""


def text_key(text: str) -> str:
    """The sha256 of a text (rows never hold the text itself)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint_key(fingerprint: Mapping[str, Any]) -> str:
    """A stable digest of a teacher's fingerprint dict."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


class ScoreCache:
    """Per-text teacher scores (JSON dicts) in one SQLite file, bounded to `max_rows` rows."""

    def __init__(self, path: str | Path | None = None, max_rows: int = MAX_ROWS):
        from cod.paths import cache_dir

        self.path = Path(path).expanduser() if path else cache_dir("teacher") / "scores.sqlite"
        self.max_rows = max_rows
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise ConfigError(
                f"Cannot open the teacher score cache {str(self.path)!r}: {err}. Choose a writable folder."
            ) from err

    def __repr__(self) -> str:
        return f"ScoreCache({str(self.path)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success and is always closed (the `with` of sqlite3 only commits)."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def get_many(self, teacher: str, texts: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored values for those `texts` that have one."""
        keys = {text_key(t): t for t in texts}
        found: dict[str, dict[str, Any]] = {}
        items = list(keys)
        with self._connect() as db:
            for start in range(0, len(items), 500):  # SQLite limits the number of parameters
                chunk = items[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT text_sha, value FROM scores WHERE teacher = ? AND text_sha IN ({marks})",
                    [teacher, *chunk],
                ).fetchall()
                for sha, value in rows:
                    try:
                        found[keys[sha]] = json.loads(value)
                    except ValueError:  # a damaged row is a miss: it is scored again and overwritten
                        continue
        return found

    def put_many(self, teacher: str, values: Mapping[str, dict[str, Any]]) -> None:
        """Store one value per text (replacing older ones), then trim the file to `max_rows`."""
        now = time.time()
        rows = [(teacher, text_key(t), json.dumps(v), now) for t, v in values.items()]
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)", rows)
            (count,) = db.execute("SELECT COUNT(*) FROM scores").fetchone()
            if count > self.max_rows:
                db.execute(
                    "DELETE FROM scores WHERE rowid IN (SELECT rowid FROM scores ORDER BY written LIMIT ?)",
                    (count - self.max_rows,),
                )

    def count(self, teacher: str | None = None) -> int:
        """Rows stored (for one teacher, or all)."""
        with self._connect() as db:
            if teacher is None:
                return db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
            return db.execute("SELECT COUNT(*) FROM scores WHERE teacher = ?", (teacher,)).fetchone()[0]
