"""The project store: projects, examples, counterfactuals with their full history, runs and sweep results.

One SQLite file (`$COD_HOME/cod.db`, or `$COD_DB`, or a path argument) in WAL mode. Every user action is one
`BEGIN IMMEDIATE ... COMMIT` transaction with `synchronous=FULL`, so once a method returns, the action survives
kill -9 and power loss; two processes writing the same project wait on each other (busy timeout) rather than
overwrite each other. Curation is undoable per project: each action records every counterfactual's state before
and after, and undo/redo replays the action log (append-only) to find what to revert.

    store = Store()                                    # $COD_HOME/cod.db
    store.create_project("rt", ["negative", "positive"], examples=data.examples)
    rec, = store.add_counterfactuals("rt", proposed)   # source = the proposer's name
    store.accept(rec.id); store.edit(rec.id, "a dull film"); store.undo("rt")
    store.curated("rt")                                # -> list[Counterfactual] for distillation
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cod.errors import DataError, StoreError
from cod.paths import cod_home
from cod.store import db as schema
from cod.store.curation import CURATED, PERSON, STATUSES, Action, CounterfactualRecord, CurationMixin, HistoryEntry
from cod.store.names import MAX_NAME_CHARS
from cod.store.owners import OwnersMixin
from cod.store.runs import RUN_STATUSES, Run, RunsMixin, _dumps, _now

if TYPE_CHECKING:  # pragma: no cover
    # Only for annotations: cod.data.readers pulls in numpy, and the store opens in light processes.
    from cod.data.readers import Example

log = logging.getLogger(__name__)

__all__ = [
    "CURATED",
    "PERSON",
    "RUN_STATUSES",
    "STATUSES",
    "Action",
    "CounterfactualRecord",
    "HistoryEntry",
    "Project",
    "Run",
    "Store",
    "default_path",
]


def default_path() -> Path:
    """The store file: `$COD_DB` when set, else `$COD_HOME/cod.db`."""
    env = os.environ.get("COD_DB")
    return Path(env).expanduser() if env else cod_home() / "cod.db"


@dataclass(frozen=True)
class Project:
    """A curation project: its data, label set, models and few-shot settings."""

    id: int
    name: str
    task: str
    data_source: str
    columns: dict[str, Any]
    label_names: list[str]
    teacher: str
    student: str
    k: int
    seed: int
    settings: dict[str, Any]
    created_at: str
    updated_at: str
    owner: str = ""  # '' local; 'hf:<user>' or 'anon:<id>' on a public Space (not part of an export)

    def meta(self) -> dict[str, Any]:
        """The settings that define the project (what an export carries), without ids and times."""
        return {
            f: getattr(self, f)
            for f in (
                "name",
                "task",
                "data_source",
                "columns",
                "label_names",
                "teacher",
                "student",
                "k",
                "seed",
                "settings",
            )
        }


class Store(RunsMixin, CurationMixin, OwnersMixin):
    """The project store in one SQLite file; safe to share between threads and processes."""

    def __init__(
        self, path: str | Path | None = None, timeout_s: float = 30.0, recover: bool = True, owner: str | None = None
    ):
        """`owner` None: every owner's rows (the CLI, the app's owner); a string: only that owner's (`for_owner`)."""
        self.path = Path(path).expanduser() if path else default_path()
        self.owner = owner
        self.timeout_s = timeout_s
        self._lock = threading.RLock()  # one connection shared by the app's worker threads
        self.backup_path: Path | None = None  # set when opening migrated an older file
        if self.path.is_dir():
            raise StoreError(
                f"The store path {self.path} is a folder: give a file path such as {self.path / 'cod.db'}."
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning(
                    "The store %s could not use WAL mode (got %s); concurrent access will be slower.", self.path, mode
                )
            self._conn.execute("PRAGMA synchronous=FULL")  # curation is hours of work: fsync every commit
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            self._ensure_schema()  # foreign keys still off: a migration may rebuild a parent table
            self._conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as err:
            with contextlib.suppress(Exception):
                self._conn.close()
            raise StoreError(
                f"{self.path} is not a readable CoD store ({err}): pass another path or move that file away."
            ) from err
        except BaseException:
            with contextlib.suppress(Exception):
                self._conn.close()
            raise
        if recover:
            self.recover_runs()

    # ---- plumbing -------------------------------------------------------------------------------------------

    def for_owner(self, owner: str) -> Store:
        """This store seen by one owner (same connection): every read and write is limited to their rows."""
        view = copy.copy(self)
        view.owner = str(owner)
        return view

    def _owns(self, owner: str) -> bool:
        return self.owner is None or owner == self.owner

    def close(self) -> None:
        """Close the connection (further calls fail)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: taken at once (IMMEDIATE) so a concurrent writer waits instead of failing later."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                raise StoreError(
                    f"The store {self.path} stayed locked for {self.timeout_s:g} s ({err}): "
                    "another process is writing; try again."
                ) from err
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as err:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                if isinstance(err, sqlite3.Error):
                    raise StoreError(
                        f"The store {self.path} could not save the change ({err}); nothing was written."
                    ) from err
                raise

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: a consistent snapshot across several queries."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def _ensure_schema(self) -> None:
        with self._write() as c:
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                schema._executescript(c, schema.SCHEMA)
                return
            if "schema_version" not in tables:
                raise StoreError(
                    f"{self.path} is an SQLite file but not a CoD store (tables {sorted(tables)}): pass another path."
                )
            version = c.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            if not isinstance(version, int) or version < 1:
                raise StoreError(f"{self.path} has no valid schema version ({version!r}): it was not written by CoD.")
            if version > schema.CURRENT_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this CoD's {schema.CURRENT_VERSION}: "
                    "upgrade CoD."
                )
            if version < schema.CURRENT_VERSION:
                self.backup_path = self._backup(c, version)
                for v in range(version, schema.CURRENT_VERSION):
                    schema.MIGRATIONS[v](c)
                c.execute("DELETE FROM schema_version")
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (schema.CURRENT_VERSION,))
                log.info(
                    "Migrated %s from schema version %d to %d (backup: %s)",
                    self.path,
                    version,
                    schema.CURRENT_VERSION,
                    self.backup_path,
                )

    def _backup(self, c: sqlite3.Connection, version: int) -> Path:
        """Copy the database, as it is inside the migration's transaction, next to it before changing it."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.v{version}-backup-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.v{version}-backup-{stamp}-{n}")
        # A connection inside a write transaction cannot be a backup source (backup_step waits forever), so a
        # second connection reads the same snapshot: our write lock keeps every other writer out meanwhile.
        source, dest = sqlite3.connect(self.path, timeout=self.timeout_s), sqlite3.connect(target)
        try:
            source.backup(dest)
        finally:
            source.close()
            dest.close()
        return target

    def schema_version(self) -> int:
        """The schema version of the open file."""
        with self._read() as c:
            return int(c.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    # ---- projects -------------------------------------------------------------------------------------------

    def create_project(
        self,
        name: str,
        label_names: Sequence[str],
        *,
        examples: Sequence[Example] = (),
        split: str = "train",
        task: str = "",
        data_source: str = "",
        columns: dict[str, Any] | None = None,
        teacher: str = "demo",
        student: str = "demo",
        k: int = 16,
        seed: int = 0,
        settings: dict[str, Any] | None = None,
    ) -> Project:
        """Create a project (with its examples) in one transaction; the name must be new."""
        with self._write() as c:
            self._insert_project(
                c,
                name,
                label_names,
                examples=examples,
                split=split,
                task=task,
                data_source=data_source,
                columns=columns,
                teacher=teacher,
                student=student,
                k=k,
                seed=seed,
                settings=settings,
            )
        return self.project(_check_name(name))

    def _insert_project(
        self,
        c: sqlite3.Connection,
        name: str,
        label_names: Sequence[str],
        *,
        examples: Sequence[Example] = (),
        split: str = "train",
        **fields: Any,
    ) -> int:
        """Insert a project (and its examples) inside the caller's transaction, so an import is one transaction;
        `fields` are all of `create_project`'s other keywords (task, data_source, columns, teacher, student, k, seed,
        settings)."""
        task, data_source, columns, teacher, student, k, seed, settings = (
            fields.pop(f) for f in ("task", "data_source", "columns", "teacher", "student", "k", "seed", "settings")
        )
        if fields:
            raise TypeError(f"Unknown project fields: {sorted(fields)}")
        name = _check_name(name)
        labels = _check_labels(label_names)
        if not isinstance(k, int) or k < 2:
            raise StoreError(f"k must be an integer of at least 2 (one example per class), got {k!r}.")
        for field_name, value in (("teacher", teacher), ("student", student)):
            if not str(value or "").strip():
                raise StoreError(
                    f"A {field_name} model is required for project {name!r}: a Hub id, a local path, or 'demo'."
                )
        owner = self.owner or ""
        if c.execute("SELECT 1 FROM projects WHERE name = ? AND owner = ?", (name, owner)).fetchone():
            raise StoreError(f"A project named {name!r} already exists: choose another name or open it.")
        now = _now()
        cur = c.execute(
            "INSERT INTO projects (owner, name, task, data_source, columns, label_names, teacher, student, k, seed, "
            "settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                owner,
                name,
                task,
                str(data_source),
                _dumps(columns or {}),
                _dumps(labels),
                teacher,
                student,
                k,
                int(seed),
                _dumps(settings or {}),
                now,
                now,
            ),
        )
        self._insert_examples(c, cur.lastrowid, labels, examples, split)
        return cur.lastrowid

    def create_project_from_data(self, name: str, data: Any, **kw: Any) -> Project:
        """Create a project from a `cod.data.readers.LabelledData` (examples, label names, source and column
        mapping)."""
        columns = {"text": getattr(data, "text_column", "text"), "label": getattr(data, "label_column", "label")}
        if getattr(data, "text_pair_column", None):
            columns["text_pair"] = data.text_pair_column
        report = getattr(data, "report", None)
        kw.setdefault("data_source", getattr(report, "source", "") or "")
        kw.setdefault("columns", columns)
        return self.create_project(name, data.label_names, examples=data.examples, **kw)

    def project(self, name: str) -> Project:
        """The project called `name` (StoreError listing the known names when there is none)."""
        with self._read() as c:
            row = c.execute("SELECT * FROM projects WHERE id = ?", (self._project_id(c, name),)).fetchone()
        return _project(row)

    def projects(self) -> list[Project]:
        """Every project, most recently changed first."""
        where, args = ("", ()) if self.owner is None else (" WHERE owner = ?", (self.owner,))
        with self._read() as c:
            rows = c.execute(f"SELECT * FROM projects{where} ORDER BY updated_at DESC, id DESC", args).fetchall()
        return [_project(r) for r in rows]

    def update_project(self, name: str, **changes: Any) -> Project:
        """Change project settings (task, data_source, columns, teacher, student, k, seed, settings, name)."""
        allowed = {"name", "task", "data_source", "columns", "teacher", "student", "k", "seed", "settings"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise StoreError(f"Cannot change {unknown} of a project: changeable fields are {sorted(allowed)}.")
        if "name" in changes:
            changes["name"] = _check_name(changes["name"])
        if "k" in changes and (not isinstance(changes["k"], int) or changes["k"] < 2):
            raise StoreError(f"k must be an integer of at least 2, got {changes['k']!r}.")
        values = {key: _dumps(v) if key in ("columns", "settings") else v for key, v in changes.items()}
        with self._write() as c:
            pid = self._project_id(c, name)
            owner = c.execute("SELECT owner FROM projects WHERE id = ?", (pid,)).fetchone()[0]
            taken = c.execute(
                "SELECT 1 FROM projects WHERE name = ? AND owner = ?", (values.get("name"), owner)
            ).fetchone()
            if "name" in values and values["name"] != name and taken:
                raise StoreError(f"A project named {values['name']!r} already exists: choose another name.")
            sets = ", ".join(f"{key} = ?" for key in values)
            c.execute(
                f"UPDATE projects SET {sets}{', ' if sets else ''}updated_at = ? WHERE id = ?",
                (*values.values(), _now(), pid),
            )
        return self.project(changes.get("name", name))

    def update_settings(self, name: str, **values: Any) -> dict[str, Any]:
        """Merge keys into the project's settings inside one transaction (a value None removes the key), so two
        processes setting different keys both keep theirs; returns the merged settings."""
        with self._write() as c:
            pid = self._project_id(c, name)
            settings = json.loads(c.execute("SELECT settings FROM projects WHERE id = ?", (pid,)).fetchone()[0])
            for key, value in values.items():
                if value is None:
                    settings.pop(key, None)
                else:
                    settings[key] = value
            c.execute("UPDATE projects SET settings = ?, updated_at = ? WHERE id = ?", (_dumps(settings), _now(), pid))
            return settings

    def delete_project(self, name: str) -> None:
        """Delete a project with its examples, counterfactuals, history, runs and sweeps."""
        with self._write() as c:
            c.execute("DELETE FROM projects WHERE id = ?", (self._project_id(c, name),))

    def summary(self, name: str) -> dict[str, Any]:
        """Counts for display: examples, counterfactuals by status, actions, runs by status."""
        with self._read() as c:
            pid = self._project_id(c, name)
            by_status = {s: 0 for s in STATUSES}
            by_status.update(
                {
                    r[0]: r[1]
                    for r in c.execute(
                        "SELECT status, COUNT(*) FROM counterfactuals WHERE project_id = ? GROUP BY status", (pid,)
                    )
                }
            )
            runs = {
                r[0]: r[1]
                for r in c.execute("SELECT status, COUNT(*) FROM runs WHERE project_id = ? GROUP BY status", (pid,))
            }
            return {
                "examples": c.execute("SELECT COUNT(*) FROM examples WHERE project_id = ?", (pid,)).fetchone()[0],
                "splits": {
                    r[0]: r[1]
                    for r in c.execute(
                        "SELECT split, COUNT(*) FROM examples WHERE project_id = ? GROUP BY split ORDER BY split",
                        (pid,),
                    )
                },
                "counterfactuals": by_status,
                "curated": sum(by_status[s] for s in CURATED),
                "actions": c.execute("SELECT COUNT(*) FROM actions WHERE project_id = ?", (pid,)).fetchone()[0],
                "runs": runs,
                "sweeps": c.execute("SELECT COUNT(*) FROM sweeps WHERE project_id = ?", (pid,)).fetchone()[0],
            }

    def _project_id(self, c: sqlite3.Connection, name: str | Project) -> int:
        """The id of this owner's project `name`; unscoped, the local one ('') when several owners use the name."""
        name = getattr(name, "name", name)
        if self.owner is not None:
            row = c.execute("SELECT id FROM projects WHERE name = ? AND owner = ?", (name, self.owner)).fetchone()
            if row is None:  # a visitor learns nothing of other owners' projects or of the server's paths
                raise StoreError(f"You have no project named {name!r}: pick one of yours or create it.")
            return row[0]
        rows = c.execute("SELECT id, owner FROM projects WHERE name = ? ORDER BY owner != '', id", (name,)).fetchall()
        if not rows:
            known = [r[0] for r in c.execute("SELECT name FROM projects ORDER BY name")]
            raise StoreError(f"No project named {name!r} in {self.path}: known projects are {known or 'none yet'}.")
        if len(rows) > 1 and rows[0]["owner"] != "":
            owners = [r["owner"] for r in rows]
            raise StoreError(
                f"{len(rows)} owners have a project named {name!r} ({owners}): open the store for one "
                "owner (Store(owner=...))."
            )
        return rows[0]["id"]

    def _labels_of(self, c: sqlite3.Connection, project_id: int) -> list[str]:
        return json.loads(c.execute("SELECT label_names FROM projects WHERE id = ?", (project_id,)).fetchone()[0])

    # ---- examples -------------------------------------------------------------------------------------------

    def add_examples(self, name: str, examples: Sequence[Example], split: str = "train") -> list[int]:
        """Append examples to a split of the project (one transaction); returns their ids."""
        with self._write() as c:
            pid = self._project_id(c, name)
            ids = self._insert_examples(c, pid, self._labels_of(c, pid), examples, split)
            c.execute("UPDATE projects SET updated_at = ? WHERE id = ?", (_now(), pid))
            return ids

    def _insert_examples(
        self, c: sqlite3.Connection, pid: int, labels: list[str], examples: Sequence[Example], split: str
    ) -> list[int]:
        start = c.execute(
            "SELECT COALESCE(MAX(position) + 1, 0) FROM examples WHERE project_id = ? AND split = ?", (pid, split)
        ).fetchone()[0]
        ids = []
        for i, ex in enumerate(examples):
            if not isinstance(ex.label, int) or not 0 <= ex.label < len(labels):
                raise DataError(
                    f"Example {i} ({ex.text[:60]!r}) has label {ex.label!r}, outside the project's labels {labels}."
                )
            cur = c.execute(
                "INSERT INTO examples (project_id, split, position, text, text_pair, label) VALUES (?, ?, ?, ?, ?, ?)",
                (pid, split, start + i, ex.text, ex.text_pair, ex.label),
            )
            ids.append(cur.lastrowid)
        return ids

    def examples(self, name: str, split: str | None = "train") -> list[Example]:
        """The project's examples of one split (None: all splits) in their original order."""
        return [ex for _, ex in self.example_rows(name, split)]

    def example_rows(self, name: str, split: str | None = "train") -> list[tuple[int, Example]]:
        """(example id, Example) pairs of one split (None: all splits) in their original order."""
        with self._read() as c:
            pid = self._project_id(c, name)
            query = "SELECT id, text, label, text_pair FROM examples WHERE project_id = ?"
            args: tuple[Any, ...] = (pid,)
            if split is not None:
                query, args = query + " AND split = ?", (pid, split)
            rows = c.execute(query + " ORDER BY split, position", args).fetchall()
        from cod.data.readers import Example

        return [(r["id"], Example(r["text"], r["label"], r["text_pair"])) for r in rows]

    # ---- export / import (cod.store.transfer) ---------------------------------------------------------------------

    def export(self, name: str, out: str | Path, which: str = "all") -> Path:
        """Write the project's pairs with provenance to .jsonl, .csv, or a folder (a `datasets` save_to_disk)."""
        from cod.store import transfer as store_io

        return store_io.export_project(self, name, out, which=which)

    def import_file(self, path: str | Path, name: str) -> Project:
        """Create project `name` from an export (.jsonl, .csv or a saved folder)."""
        from cod.store import transfer as store_io

        return store_io.import_project(self, path, name)


# ---- row helpers ------------------------------------------------------------------------------------------------


def _check_name(name: Any) -> str:
    text = str(name or "").strip()
    if not text or len(text) > MAX_NAME_CHARS or any(ord(ch) < 32 for ch in text):
        raise StoreError(f"Project name {name!r} is not usable: give 1 to {MAX_NAME_CHARS} printable characters.")
    return text


def _check_labels(label_names: Sequence[str]) -> list[str]:
    labels = [str(n) for n in label_names]
    if len(labels) < 2 or len(set(labels)) != len(labels) or not all(n.strip() for n in labels):
        raise DataError(f"A project needs at least 2 distinct, non-empty label names, got {labels}.")
    return labels


def _project(row: sqlite3.Row) -> Project:
    return Project(
        id=row["id"],
        name=row["name"],
        task=row["task"],
        data_source=row["data_source"],
        columns=json.loads(row["columns"]),
        label_names=json.loads(row["label_names"]),
        teacher=row["teacher"],
        student=row["student"],
        k=row["k"],
        seed=row["seed"],
        settings=json.loads(row["settings"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        owner=row["owner"],
    )
