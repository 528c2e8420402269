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
import dataclasses
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cod.store import curation
from cod.store import db as schema
from cod.counterfactuals import edits as E
from cod.counterfactuals.base import Counterfactual
from cod.errors import DataError, StoreError
from cod.paths import cod_home
from cod.store.curation import CURATED, PERSON, STATUSES, UNDOABLE
from cod.store.curation import new_action as _new_action
from cod.store.curation import source_of as _source_of
from cod.store.runs import RUN_STATUSES, Run, RunsMixin, _dumps, _now

if TYPE_CHECKING:  # pragma: no cover
    from cod.data.readers import Example  # imported lazily: cod.data.readers pulls in numpy, and the store opens in light processes

log = logging.getLogger(__name__)

__all__ = ["CURATED", "PERSON", "RUN_STATUSES", "STATUSES", "Action", "CounterfactualRecord", "HistoryEntry", "Project", "Run",
           "Store", "default_path"]



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
        return {f: getattr(self, f) for f in ("name", "task", "data_source", "columns", "label_names", "teacher", "student", "k", "seed", "settings")}


@dataclass(frozen=True)
class CounterfactualRecord:
    """A stored counterfactual: the proposal as made, its curation status and its current text."""

    id: int
    project_id: int
    example_id: int | None
    status: str  # proposed | accepted | rejected | edited
    text: str  # the counterfactual text now (after any edits)
    probs: list[float] | None  # teacher on `text` when scored; None after an unscored edit
    source: str  # the proposer's name, or "person"
    version: int  # bumped on every change; pass it back as `expected_version` to detect concurrent edits
    record: dict[str, Any]  # Counterfactual.to_record() as proposed
    label_names: tuple[str, ...]
    created_at: str
    updated_at: str

    @property
    def proposed_text(self) -> str:
        """The counterfactual text as the proposer made it."""
        return self.record.get("counterfactual", "")

    @property
    def edited(self) -> bool:
        """A person changed the proposed text."""
        return self.text != self.proposed_text

    @property
    def curated(self) -> bool:
        """Kept for training: accepted, or edited by a person."""
        return self.status in CURATED

    @property
    def counterfactual(self) -> Counterfactual:
        """The content as a `Counterfactual` with the current text (and its teacher probabilities when scored)."""
        cf = Counterfactual.from_record(self.record, self.label_names)
        if not self.edited:
            return cf
        probs = list(self.probs) if self.probs else []  # unscored: no verdict rather than the stale one
        return dataclasses.replace(cf, counterfactual=self.text, counterfactual_teacher_probs=probs, edits=E.diff(cf.text, self.text))


@dataclass(frozen=True)
class HistoryEntry:
    """One change to one counterfactual: what it was before and after, when, and who did it."""

    id: int
    action_id: int
    counterfactual_id: int
    kind: str  # propose edit accept reject reset import undo redo (or a migrated version-1 action)
    source: str
    before: dict[str, Any] | None  # {"status", "text", "probs"}; None for a proposal
    after: dict[str, Any] | None
    at: str


@dataclass(frozen=True)
class Action:
    """One user action (one transaction): an undo/redo names the action it applied to in `target`."""

    id: int
    project_id: int
    kind: str
    source: str
    target: int | None
    target_kind: str | None
    counterfactual_ids: tuple[int, ...]
    at: str


class Store(RunsMixin):
    """The project store in one SQLite file; safe to share between threads and processes."""

    def __init__(self, path: str | Path | None = None, timeout_s: float = 30.0, recover: bool = True,
                 owner: str | None = None):
        """`owner` None: every owner's rows (the CLI, the app's owner); a string: only that owner's (`for_owner`)."""
        self.path = Path(path).expanduser() if path else default_path()
        self.owner = owner
        self.timeout_s = timeout_s
        self._lock = threading.RLock()  # one connection shared by the app's worker threads
        self.backup_path: Path | None = None  # set when opening migrated an older file
        if self.path.is_dir():
            raise StoreError(f"The store path {self.path} is a folder: give a file path such as {self.path / 'cod.db'}.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("The store %s could not use WAL mode (got %s); concurrent access will be slower.", self.path, mode)
            self._conn.execute("PRAGMA synchronous=FULL")  # curation is hours of work: fsync every commit
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            self._ensure_schema()  # foreign keys still off: a migration may rebuild a parent table
            self._conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as err:
            with contextlib.suppress(Exception):
                self._conn.close()
            raise StoreError(f"{self.path} is not a readable CoD store ({err}): pass another path or move that file away.") from err
        except BaseException:
            with contextlib.suppress(Exception):
                self._conn.close()
            raise
        if recover:
            self.recover_runs()

    # ---- plumbing -------------------------------------------------------------------------------------------

    def for_owner(self, owner: str) -> "Store":
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

    def __enter__(self) -> "Store":
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
                raise StoreError(f"The store {self.path} stayed locked for {self.timeout_s:g} s ({err}): another process is writing; try again.") from err
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as err:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                if isinstance(err, sqlite3.Error):
                    raise StoreError(f"The store {self.path} could not save the change ({err}); nothing was written.") from err
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
                raise StoreError(f"{self.path} is an SQLite file but not a CoD store (tables {sorted(tables)}): pass another path.")
            version = c.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            if not isinstance(version, int) or version < 1:
                raise StoreError(f"{self.path} has no valid schema version ({version!r}): it was not written by CoD.")
            if version > schema.CURRENT_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this CoD's {schema.CURRENT_VERSION}: upgrade CoD."
                )
            if version < schema.CURRENT_VERSION:
                self.backup_path = self._backup(c, version)
                for v in range(version, schema.CURRENT_VERSION):
                    schema.MIGRATIONS[v](c)
                c.execute("DELETE FROM schema_version")
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (schema.CURRENT_VERSION,))
                log.info("Migrated %s from schema version %d to %d (backup: %s)", self.path, version, schema.CURRENT_VERSION, self.backup_path)

    def _backup(self, c: sqlite3.Connection, version: int) -> Path:
        """Copy the database, as it is inside the migration's transaction, next to it before changing it."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
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
            self._insert_project(c, name, label_names, examples=examples, split=split, task=task, data_source=data_source,
                                 columns=columns, teacher=teacher, student=student, k=k, seed=seed, settings=settings)
        return self.project(_check_name(name))

    def _insert_project(self, c: sqlite3.Connection, name: str, label_names: Sequence[str], *, examples: Sequence[Example] = (),
                        split: str = "train", task: str = "", data_source: str = "", columns: dict[str, Any] | None = None,
                        teacher: str = "demo", student: str = "demo", k: int = 16, seed: int = 0,
                        settings: dict[str, Any] | None = None) -> int:
        """Insert a project (and its examples) inside the caller's transaction, so an import is one transaction."""
        name = _check_name(name)
        labels = _check_labels(label_names)
        if not isinstance(k, int) or k < 2:
            raise StoreError(f"k must be an integer of at least 2 (one example per class), got {k!r}.")
        for field_name, value in (("teacher", teacher), ("student", student)):
            if not str(value or "").strip():
                raise StoreError(f"A {field_name} model is required for project {name!r}: a Hub id, a local path, or 'demo'.")
        owner = self.owner or ""
        if c.execute("SELECT 1 FROM projects WHERE name = ? AND owner = ?", (name, owner)).fetchone():
            raise StoreError(f"A project named {name!r} already exists: choose another name or open it.")
        now = _now()
        cur = c.execute(
            "INSERT INTO projects (owner, name, task, data_source, columns, label_names, teacher, student, k, seed, "
            "settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (owner, name, task, str(data_source), _dumps(columns or {}), _dumps(labels), teacher, student, k, int(seed),
             _dumps(settings or {}), now, now),
        )
        self._insert_examples(c, cur.lastrowid, labels, examples, split)
        return cur.lastrowid

    def create_project_from_data(self, name: str, data: Any, **kw: Any) -> Project:
        """Create a project from a `cod.data.readers.LabelledData` (examples, label names, source and column mapping)."""
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
            taken = c.execute("SELECT 1 FROM projects WHERE name = ? AND owner = ?", (values.get("name"), owner)).fetchone()
            if "name" in values and values["name"] != name and taken:
                raise StoreError(f"A project named {values['name']!r} already exists: choose another name.")
            sets = ", ".join(f"{key} = ?" for key in values)
            c.execute(f"UPDATE projects SET {sets}{', ' if sets else ''}updated_at = ? WHERE id = ?", (*values.values(), _now(), pid))
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
            by_status.update({r[0]: r[1] for r in c.execute("SELECT status, COUNT(*) FROM counterfactuals WHERE project_id = ? GROUP BY status", (pid,))})
            runs = {r[0]: r[1] for r in c.execute("SELECT status, COUNT(*) FROM runs WHERE project_id = ? GROUP BY status", (pid,))}
            return {
                "examples": c.execute("SELECT COUNT(*) FROM examples WHERE project_id = ?", (pid,)).fetchone()[0],
                "splits": {r[0]: r[1] for r in c.execute(
                    "SELECT split, COUNT(*) FROM examples WHERE project_id = ? GROUP BY split ORDER BY split", (pid,))},
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
            raise StoreError(f"{len(rows)} owners have a project named {name!r} ({owners}): open the store for one "
                             "owner (Store(owner=...)).")
        return rows[0]["id"]

    def _own_row(self, c: sqlite3.Connection, cf_id: int) -> sqlite3.Row:
        """The counterfactual `cf_id`, if it belongs to this owner's project (else as if it did not exist)."""
        row = _row(c, cf_id)
        owner = c.execute("SELECT owner FROM projects WHERE id = ?", (row["project_id"],)).fetchone()[0]
        if not self._owns(owner):
            raise StoreError(f"No counterfactual with id {cf_id}: it may belong to a deleted project; reload the list.")
        return row

    def _own_rows(self, c: sqlite3.Connection, cf_ids: Sequence[int]) -> list[sqlite3.Row]:
        return [self._own_row(c, i) for i in cf_ids]

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

    def _insert_examples(self, c: sqlite3.Connection, pid: int, labels: list[str], examples: Sequence[Example], split: str) -> list[int]:
        start = c.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM examples WHERE project_id = ? AND split = ?", (pid, split)).fetchone()[0]
        ids = []
        for i, ex in enumerate(examples):
            if not isinstance(ex.label, int) or not 0 <= ex.label < len(labels):
                raise DataError(f"Example {i} ({ex.text[:60]!r}) has label {ex.label!r}, outside the project's labels {labels}.")
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

    # ---- counterfactuals and curation -----------------------------------------------------------------------

    def add_counterfactuals(
        self,
        name: str,
        counterfactuals: Sequence[Counterfactual],
        source: str | None = None,
        example_ids: Sequence[int | None] | None = None,
    ) -> list[CounterfactualRecord]:
        """Store proposals (one action, one transaction), status 'proposed'; each is linked to the project's example
        with the same text unless `example_ids` says otherwise. `source` defaults to each proposer's name."""
        if example_ids is not None and len(example_ids) != len(counterfactuals):
            raise StoreError(f"example_ids has {len(example_ids)} entries for {len(counterfactuals)} counterfactuals.")
        with self._write() as c:
            pid = self._project_id(c, name)
            labels = self._labels_of(c, pid)
            if not counterfactuals:
                return []
            now = _now()
            action = _new_action(c, pid, "propose", source or _source_of(counterfactuals[0]), now)
            ids = []
            for i, cf in enumerate(counterfactuals):
                record = _check_counterfactual(cf, labels, i)
                who = source or _source_of(cf)
                ex_id = example_ids[i] if example_ids is not None else _find_example(c, pid, cf.text)
                state = {"status": "proposed", "text": cf.counterfactual, "probs": list(cf.counterfactual_teacher_probs) or None}
                cur = c.execute(
                    "INSERT INTO counterfactuals (project_id, example_id, record, status, current_text, current_probs, source, "
                    "created_at, updated_at) VALUES (?, ?, ?, 'proposed', ?, ?, ?, ?, ?)",
                    (pid, ex_id, _dumps(record), cf.counterfactual, _dumps(state["probs"]), who, now, now),
                )
                _history(c, action, cur.lastrowid, "propose", who, None, state, now)
                ids.append(cur.lastrowid)
            c.execute("UPDATE projects SET updated_at = ? WHERE id = ?", (now, pid))
            return [_record(r, labels) for r in _rows(c, ids)]

    def add_counterfactual(self, name: str, counterfactual: Counterfactual, source: str | None = None) -> CounterfactualRecord:
        """Store one proposal (a person writing one by hand passes source='person')."""
        return self.add_counterfactuals(name, [counterfactual], source=source)[0]

    def counterfactuals(self, name: str, status: str | Sequence[str] | None = None) -> list[CounterfactualRecord]:
        """The project's counterfactuals in the order they were proposed, optionally of some statuses."""
        statuses = [status] if isinstance(status, str) else list(status or [])
        for s in statuses:
            _check_status(s)
        with self._read() as c:
            pid = self._project_id(c, name)
            labels = self._labels_of(c, pid)
            query = "SELECT * FROM counterfactuals WHERE project_id = ?"
            if statuses:
                query += f" AND status IN ({', '.join('?' * len(statuses))})"
            rows = c.execute(query + " ORDER BY id", (pid, *statuses)).fetchall()
        return [_record(r, labels) for r in rows]

    def counterfactual(self, cf_id: int) -> CounterfactualRecord:
        """One stored counterfactual by id."""
        with self._read() as c:
            row = self._own_row(c, cf_id)
            return _record(row, self._labels_of(c, row["project_id"]))

    def curated(self, name: str, include_unreviewed: bool = False) -> list[Counterfactual]:
        """The counterfactual that trains for each example (`cod.store.curation`: the person's edit, else the accepted
        one; unreviewed proposals only when asked), with its current text, ready for distillation."""
        return [r.counterfactual for r in curation.choose(self.counterfactuals(name), include_unreviewed)]

    def accept(self, cf_id: int, source: str = PERSON, expected_version: int | None = None) -> CounterfactualRecord:
        """Mark a counterfactual accepted (one action)."""
        return self.set_status([cf_id], "accepted", source, None if expected_version is None else [expected_version])[0]

    def reject(self, cf_id: int, source: str = PERSON, expected_version: int | None = None) -> CounterfactualRecord:
        """Mark a counterfactual rejected (one action)."""
        return self.set_status([cf_id], "rejected", source, None if expected_version is None else [expected_version])[0]

    def reset(self, cf_id: int, source: str = PERSON, expected_version: int | None = None) -> CounterfactualRecord:
        """Put a counterfactual back to 'proposed' (one action)."""
        return self.set_status([cf_id], "proposed", source, None if expected_version is None else [expected_version])[0]

    def set_status(
        self, cf_ids: Sequence[int], status: str, source: str = PERSON, expected_versions: Sequence[int] | None = None
    ) -> list[CounterfactualRecord]:
        """Set the status of several counterfactuals of one project as ONE action (one undo step), e.g. accept all
        flipped. Those already in `status` are left alone; returns every record, in the order given."""
        _check_status(status)
        kind = {"accepted": "accept", "rejected": "reject", "proposed": "reset", "edited": "edit"}[status]
        with self._write() as c:
            rows = self._own_rows(c, cf_ids)
            pid = _one_project(rows)
            _check_versions(rows, expected_versions)
            now = _now()
            action = None
            for row in rows:
                if row["status"] == status:
                    continue
                if status in CURATED and not row["current_text"].strip():
                    error = json.loads(row["record"]).get("error") or "no text"
                    raise StoreError(f"Counterfactual {row['id']} has no text (the proposer failed: {error}): edit it before keeping it.")
                action = action or _new_action(c, pid, kind, source, now)
                _apply(c, action, row, kind, source, {**_state(row), "status": status}, now)
            if action is not None:
                c.execute("UPDATE projects SET updated_at = ? WHERE id = ?", (now, pid))
            return [_record(r, self._labels_of(c, pid)) for r in _rows(c, cf_ids)]

    def edit(
        self,
        cf_id: int,
        text: str,
        counterfactual_teacher_probs: Sequence[float] | None = None,
        source: str = PERSON,
        expected_version: int | None = None,
    ) -> CounterfactualRecord:
        """Replace the counterfactual's text (status becomes 'edited'); pass the teacher's probabilities on the new
        text when you have them, else it is stored unscored."""
        text = str(text).strip()
        if not text:
            raise StoreError(f"The edited text of counterfactual {cf_id} is empty: write a counterfactual or reject it.")
        with self._write() as c:
            row = self._own_row(c, cf_id)
            labels = self._labels_of(c, row["project_id"])
            _check_versions([row], None if expected_version is None else [expected_version])
            probs = [float(p) for p in counterfactual_teacher_probs] if counterfactual_teacher_probs is not None else None
            if probs is not None and len(probs) != len(labels):
                raise StoreError(f"{len(probs)} teacher probabilities given for the edit of {cf_id}, but the project has {len(labels)} labels {labels}.")
            if text == row["current_text"] and (probs is None or probs == _state(row)["probs"]):
                return _record(row, labels)  # nothing changed: no action, no history line
            now = _now()
            action = _new_action(c, row["project_id"], "edit", source, now)
            status = "edited" if text != row["current_text"] else row["status"]  # a re-score alone keeps the status
            _apply(c, action, row, "edit", source, {"status": status, "text": text, "probs": probs}, now)
            c.execute("UPDATE projects SET updated_at = ? WHERE id = ?", (now, row["project_id"]))
            return _record(_row(c, cf_id), labels)

    def history(self, cf_id: int | None = None, project: str | None = None) -> list[HistoryEntry]:
        """Every change to one counterfactual, or to every counterfactual of a project, oldest first."""
        if (cf_id is None) == (project is None):
            raise StoreError("Pass exactly one of cf_id or project to history().")
        with self._read() as c:
            if cf_id is not None:
                self._own_row(c, cf_id)
                rows = c.execute("SELECT * FROM history WHERE counterfactual_id = ? ORDER BY id", (cf_id,)).fetchall()
            else:
                rows = c.execute(
                    "SELECT h.* FROM history h JOIN actions a ON a.id = h.action_id WHERE a.project_id = ? ORDER BY h.id",
                    (self._project_id(c, project),),
                ).fetchall()
        return [_entry(r) for r in rows]

    def actions(self, name: str) -> list[Action]:
        """The project's user actions, oldest first."""
        with self._read() as c:
            rows = c.execute("SELECT * FROM actions WHERE project_id = ? ORDER BY id", (self._project_id(c, name),)).fetchall()
            return [_action(c, r) for r in rows]

    # ---- undo / redo ----------------------------------------------------------------------------------------

    def can_undo(self, name: str) -> bool:
        """There is a curation action to undo in this project."""
        with self._read() as c:
            return bool(_undo_stacks(c, self._project_id(c, name))[0])

    def can_redo(self, name: str) -> bool:
        """There is an undone action to redo (no new curation action since)."""
        with self._read() as c:
            return bool(_undo_stacks(c, self._project_id(c, name))[1])

    def undo(self, name: str, source: str = PERSON) -> Action | None:
        """Revert the project's latest curation action (edit/accept/reject/reset); None when there is none."""
        return self._undo_redo(name, "undo", source)

    def redo(self, name: str, source: str = PERSON) -> Action | None:
        """Apply again the latest undone action; None when there is none (a new action clears the redo list)."""
        return self._undo_redo(name, "redo", source)

    def _undo_redo(self, name: str, kind: str, source: str) -> Action | None:
        with self._write() as c:
            pid = self._project_id(c, name)
            done, undone = _undo_stacks(c, pid)
            stack = done if kind == "undo" else undone
            if not stack:
                return None
            target = stack[-1]
            now = _now()
            action = _new_action(c, pid, kind, source, now, target=target)
            order = "DESC" if kind == "undo" else "ASC"  # undo reverts changes last-first
            for h in c.execute(f"SELECT * FROM history WHERE action_id = ? ORDER BY id {order}", (target,)).fetchall():
                state = json.loads(h["before"] if kind == "undo" else h["after"])
                _apply(c, action, _row(c, h["counterfactual_id"]), kind, source, state, now)
            c.execute("UPDATE projects SET updated_at = ? WHERE id = ?", (now, pid))
            return _action(c, c.execute("SELECT * FROM actions WHERE id = ?", (action,)).fetchone())

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
    if not text or len(text) > 100 or any(ord(ch) < 32 for ch in text):
        raise StoreError(f"Project name {name!r} is not usable: give 1 to 100 printable characters.")
    return text


def _check_labels(label_names: Sequence[str]) -> list[str]:
    labels = [str(n) for n in label_names]
    if len(labels) < 2 or len(set(labels)) != len(labels) or not all(n.strip() for n in labels):
        raise DataError(f"A project needs at least 2 distinct, non-empty label names, got {labels}.")
    return labels


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise StoreError(f"Status {status!r} is not one of {list(STATUSES)}.")


def _check_counterfactual(cf: Counterfactual, labels: list[str], i: int) -> dict[str, Any]:
    n = len(labels)
    for what, value in (("label", cf.label), ("target", cf.target)):
        if not isinstance(value, int) or not 0 <= value < n:
            raise DataError(f"Counterfactual {i} ({cf.text[:60]!r}) has {what} {value!r}, outside the project's labels {labels}.")
    for what, probs in (("teacher_probs", cf.teacher_probs), ("counterfactual_teacher_probs", cf.counterfactual_teacher_probs)):
        if probs and len(probs) != n:
            raise DataError(f"Counterfactual {i} has {len(probs)} {what} for the project's {n} labels {labels}: use the project's teacher.")
    return cf.to_record(labels)


def _find_example(c: sqlite3.Connection, pid: int, text: str) -> int | None:
    row = c.execute("SELECT id FROM examples WHERE project_id = ? AND text = ? ORDER BY split != 'train', id LIMIT 1", (pid, text)).fetchone()
    return row[0] if row else None


def _row(c: sqlite3.Connection, cf_id: int) -> sqlite3.Row:
    row = c.execute("SELECT * FROM counterfactuals WHERE id = ?", (cf_id,)).fetchone()
    if row is None:
        raise StoreError(f"No counterfactual with id {cf_id}: it may belong to a deleted project; reload the list.")
    return row


def _rows(c: sqlite3.Connection, cf_ids: Sequence[int]) -> list[sqlite3.Row]:
    return [_row(c, i) for i in cf_ids]


def _one_project(rows: Sequence[sqlite3.Row]) -> int:
    projects = {r["project_id"] for r in rows}
    if len(projects) > 1:
        raise StoreError(f"One action changes one project's counterfactuals; these belong to projects {sorted(projects)}.")
    if not projects:
        raise StoreError("No counterfactual ids given.")
    return projects.pop()


def _check_versions(rows: Sequence[sqlite3.Row], expected: Sequence[int] | None) -> None:
    if expected is None:
        return
    for row, version in zip(rows, expected):
        if row["version"] != version:
            raise StoreError(
                f"Counterfactual {row['id']} changed since it was loaded (version {version}, now {row['version']}, "
                f"at {row['updated_at']}): reload it and try again."
            )


def _state(row: sqlite3.Row) -> dict[str, Any]:
    return {"status": row["status"], "text": row["current_text"], "probs": json.loads(row["current_probs"]) if row["current_probs"] else None}


def _history(c: sqlite3.Connection, action: int, cf_id: int, kind: str, source: str, before: Any, after: Any, at: str) -> None:
    c.execute(
        "INSERT INTO history (action_id, counterfactual_id, kind, source, before, after, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (action, cf_id, kind, source, None if before is None else _dumps(before), None if after is None else _dumps(after), at),
    )


def _apply(c: sqlite3.Connection, action: int, row: sqlite3.Row, kind: str, source: str, state: dict[str, Any], at: str) -> None:
    """Set a counterfactual to `state` and log the change with the state it replaced."""
    c.execute(
        "UPDATE counterfactuals SET status = ?, current_text = ?, current_probs = ?, version = version + 1, updated_at = ? WHERE id = ?",
        (state["status"], state["text"], _dumps(state["probs"]) if state.get("probs") is not None else None, at, row["id"]),
    )
    _history(c, action, row["id"], kind, source, _state(row), state, at)


def _undo_stacks(c: sqlite3.Connection, pid: int) -> tuple[list[int], list[int]]:
    """Replay the action log: (actions that can be undone, actions that can be redone), each newest last."""
    done: list[int] = []
    undone: list[int] = []
    kinds = (*UNDOABLE, "undo", "redo")
    rows = c.execute(f"SELECT id, kind, target FROM actions WHERE project_id = ? AND kind IN ({', '.join('?' * len(kinds))}) ORDER BY id", (pid, *kinds))
    for r in rows:
        if r["kind"] == "undo":
            if done and done[-1] == r["target"]:
                undone.append(done.pop())
        elif r["kind"] == "redo":
            if undone and undone[-1] == r["target"]:
                done.append(undone.pop())
        else:
            done.append(r["id"])
            undone.clear()
    return done, undone


def _project(row: sqlite3.Row) -> Project:
    return Project(
        id=row["id"], name=row["name"], task=row["task"], data_source=row["data_source"], columns=json.loads(row["columns"]),
        label_names=json.loads(row["label_names"]), teacher=row["teacher"], student=row["student"], k=row["k"], seed=row["seed"],
        settings=json.loads(row["settings"]), created_at=row["created_at"], updated_at=row["updated_at"], owner=row["owner"],
    )


def _record(row: sqlite3.Row, labels: Sequence[str]) -> CounterfactualRecord:
    return CounterfactualRecord(
        id=row["id"], project_id=row["project_id"], example_id=row["example_id"], status=row["status"], text=row["current_text"],
        probs=json.loads(row["current_probs"]) if row["current_probs"] else None, source=row["source"], version=row["version"],
        record=json.loads(row["record"]), label_names=tuple(labels), created_at=row["created_at"], updated_at=row["updated_at"],
    )


def _entry(row: sqlite3.Row) -> HistoryEntry:
    return HistoryEntry(
        id=row["id"], action_id=row["action_id"], counterfactual_id=row["counterfactual_id"], kind=row["kind"], source=row["source"],
        before=json.loads(row["before"]) if row["before"] else None, after=json.loads(row["after"]) if row["after"] else None, at=row["at"],
    )


def _action(c: sqlite3.Connection, row: sqlite3.Row) -> Action:
    ids = tuple(r[0] for r in c.execute("SELECT counterfactual_id FROM history WHERE action_id = ? ORDER BY id", (row["id"],)))
    target_kind = None
    if row["target"] is not None:
        target_kind = c.execute("SELECT kind FROM actions WHERE id = ?", (row["target"],)).fetchone()[0]
    return Action(id=row["id"], project_id=row["project_id"], kind=row["kind"], source=row["source"], target=row["target"],
                  target_kind=target_kind, counterfactual_ids=ids, at=row["at"])
