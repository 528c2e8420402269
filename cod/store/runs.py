"""Runs and sweep results in the project store (mixed into `cod.store.projects.Store`).

A run records its owner (pid, host, the process's start time) while it is 'running'; when a store opens, runs
whose owner no longer exists are marked 'interrupted' (a run of a live process, here or in another process, is
left alone) and can be resumed as a new run that continues from the same artifact folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cod.errors import StoreError

log = logging.getLogger(__name__)

RUN_STATUSES = ("running", "done", "failed", "interrupted", "stopped")
STALE_FOREIGN_RUN_S = 3600.0  # a run owned by another host is presumed dead after this long without an event


def _now() -> str:
    """UTC time as ISO 8601 with microseconds: every store timestamp, so they sort as strings."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Run:
    """A distillation (or other) run: its config, status, metrics and artifact folder."""

    id: int
    project_id: int | None
    kind: str
    config: dict[str, Any]
    status: str  # running | done | failed | interrupted | stopped
    metrics: dict[str, Any]
    artifact_dir: str | None
    error: str
    pid: int | None
    host: str | None
    resumed_from: int | None
    started_at: str
    finished_at: str | None


class RunsMixin:
    """Run and sweep methods of `Store`; they use its `_write`, `_read`, `_project_id` and `path`."""

    # ---- runs -----------------------------------------------------------------------------------------------

    def start_run(
        self,
        project: str | None,
        config: Any,
        kind: str = "distill",
        artifact_dir: str | Path | None = None,
        resumed_from: int | None = None,
    ) -> Run:
        """Record a run started by this process (status 'running'); `config` is a dict or a config with to_dict()."""
        config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        pid_, host, started = _owner()
        now = _now()
        with self._write() as c:
            project_id = self._project_id(c, project) if project is not None else None
            owner = self._owner_of(c, project_id)
            cur = c.execute(
                "INSERT INTO runs (owner, project_id, kind, config, status, artifact_dir, pid, host, pid_started, "
                "heartbeat_at, resumed_from, started_at) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (
                    owner,
                    project_id,
                    kind,
                    _dumps(config),
                    str(artifact_dir) if artifact_dir else None,
                    pid_,
                    host,
                    started,
                    now,
                    resumed_from,
                    now,
                ),
            )
            c.execute(
                "INSERT INTO run_events (run_id, kind, payload, at) VALUES (?, 'started', ?, ?)",
                (cur.lastrowid, _dumps({"pid": pid_, "host": host}), now),
            )
            run_id = cur.lastrowid
        return self.run(run_id)

    def log_event(self, run_id: int, event: Any) -> None:
        """Append an event (a DistillEvent-like dataclass or a dict with a 'kind') to the run's timeline."""
        payload = dataclasses.asdict(event) if dataclasses.is_dataclass(event) else dict(event)
        now = _now()
        with self._write() as c:
            self._run_row(c, run_id)
            c.execute(
                "INSERT INTO run_events (run_id, kind, payload, at) VALUES (?, ?, ?, ?)",
                (run_id, str(payload.get("kind", "event")), _dumps(payload), now),
            )
            c.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (now, run_id))

    def finish_run(
        self,
        run_id: int,
        status: str = "done",
        metrics: dict[str, Any] | None = None,
        error: str = "",
        artifact_dir: str | Path | None = None,
    ) -> Run:
        """Close a run as done, failed, stopped or interrupted, with its final metrics."""
        if status not in RUN_STATUSES or status == "running":
            raise StoreError(
                f"A run finishes as one of {[s for s in RUN_STATUSES if s != 'running']}, not {status!r}."
            )
        now = _now()
        with self._write() as c:
            row = self._run_row(c, run_id)
            merged = {**json.loads(row["metrics"]), **(metrics or {})}
            c.execute(
                "UPDATE runs SET status = ?, metrics = ?, error = ?, finished_at = ?, "
                "artifact_dir = COALESCE(?, artifact_dir) WHERE id = ?",
                (status, _dumps(merged), error, now, str(artifact_dir) if artifact_dir else None, run_id),
            )
            c.execute(
                "INSERT INTO run_events (run_id, kind, payload, at) VALUES (?, ?, ?, ?)",
                (run_id, status, _dumps({"error": error} if error else {}), now),
            )
        return self.run(run_id)

    def run(self, run_id: int) -> Run:
        """One run by id."""
        with self._read() as c:
            return _run(self._run_row(c, run_id))

    def runs(self, project: str | None = None, status: str | None = None) -> list[Run]:
        """Runs (of one project, of one status), newest first."""
        with self._read() as c:
            query, args = "SELECT * FROM runs WHERE 1 = 1", []
            if self.owner is not None:
                query, args = query + " AND owner = ?", [self.owner]
            if project is not None:
                query, args = query + " AND project_id = ?", [*args, self._project_id(c, project)]
            if status is not None:
                query, args = query + " AND status = ?", [*args, status]
            return [_run(r) for r in c.execute(query + " ORDER BY id DESC", args)]

    def run_events(self, run_id: int) -> list[dict[str, Any]]:
        """The run's timeline: each event's payload plus its 'at' time, oldest first."""
        with self._read() as c:
            self._run_row(c, run_id)
            rows = c.execute(
                "SELECT kind, payload, at FROM run_events WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
        return [{"kind": r["kind"], **json.loads(r["payload"]), "at": r["at"]} for r in rows]

    def resume_run(self, run_id: int) -> Run:
        """Start a new run owned by this process that continues an interrupted/stopped/failed one (same config and
        artifact folder, `resumed_from` set); the caller restarts training from the folder's checkpoints."""
        old = self.run(run_id)
        if old.status == "running":
            raise StoreError(f"Run {run_id} is still running (pid {old.pid} on {old.host}): stop it before resuming.")
        project = None
        if old.project_id is not None:
            with self._read() as c:
                project = c.execute("SELECT name FROM projects WHERE id = ?", (old.project_id,)).fetchone()[0]
        return self.start_run(project, old.config, kind=old.kind, artifact_dir=old.artifact_dir, resumed_from=run_id)

    def recover_runs(self) -> list[int]:
        """Mark runs left 'running' by a process that no longer exists as 'interrupted'; returns their ids."""
        with self._read() as c:
            candidates = [
                r["id"] for r in c.execute("SELECT * FROM runs WHERE status = 'running'") if not _owner_alive(r)
            ]
        if not candidates:
            return []
        dead = []
        with self._write() as c:
            now = _now()
            for run_id in candidates:
                row = c.execute("SELECT * FROM runs WHERE id = ? AND status = 'running'", (run_id,)).fetchone()
                if row is None or _owner_alive(row):
                    continue  # finished or re-claimed meanwhile
                why = (
                    f"cut off: its process (pid {row['pid']} on {row['host']}) is gone"
                    if row["pid"]
                    else "cut off: its process is gone"
                )
                c.execute(
                    "UPDATE runs SET status = 'interrupted', error = ?, finished_at = ? WHERE id = ?",
                    (why, now, run_id),
                )
                c.execute(
                    "INSERT INTO run_events (run_id, kind, payload, at) VALUES (?, 'interrupted', ?, ?)",
                    (run_id, _dumps({"error": why}), now),
                )
                dead.append(run_id)
        if dead:
            log.warning("Marked %d run(s) cut off by a dead process as interrupted: %s", len(dead), dead)
        return dead

    def _run_row(self, c: sqlite3.Connection, run_id: int) -> sqlite3.Row:
        row = c.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is not None and self.owner is not None and row["owner"] != self.owner:
            row = None  # another owner's run reads as missing
        if row is None:
            where = "" if self.owner is not None else f" in {self.path}"
            raise StoreError(f"No run with id {run_id}{where}: pick one of the runs listed for your project.")
        return row

    def _owner_of(self, c: sqlite3.Connection, project_id: int | None) -> str:
        """The owner of a new run or sweep: its project's, else this store's ('' unscoped)."""
        if project_id is not None:
            return c.execute("SELECT owner FROM projects WHERE id = ?", (project_id,)).fetchone()[0]
        return self.owner or ""

    def _sweep_row(self, c: sqlite3.Connection, sweep_id: int) -> sqlite3.Row:
        row = c.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if row is None or (self.owner is not None and row["owner"] != self.owner):
            where = "" if self.owner is not None else f" in {self.path}"
            raise StoreError(f"No sweep with id {sweep_id}{where}.")
        return row

    # ---- sweeps ---------------------------------------------------------------------------------------------

    def add_sweep(self, project: str | None, config: Any, label: str = "") -> int:
        """Record a sweep (its config); results are added row by row as they come."""
        config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        with self._write() as c:
            project_id = self._project_id(c, project) if project is not None else None
            return c.execute(
                "INSERT INTO sweeps (owner, project_id, label, config, created_at) VALUES (?, ?, ?, ?, ?)",
                (self._owner_of(c, project_id), project_id, label, _dumps(config), _now()),
            ).lastrowid

    def add_sweep_results(self, sweep_id: int, rows: Sequence[dict[str, Any]], run_id: int | None = None) -> None:
        """Append result rows (one results.csv line each) to a sweep, in one transaction."""
        with self._write() as c:
            self._sweep_row(c, sweep_id)
            c.executemany(
                "INSERT INTO sweep_results (sweep_id, run_id, row) VALUES (?, ?, ?)",
                [(sweep_id, run_id, _dumps(dict(r))) for r in rows],
            )

    def sweep_results(self, sweep_id: int) -> list[dict[str, Any]]:
        """A sweep's result rows in the order they were added."""
        with self._read() as c:
            self._sweep_row(c, sweep_id)
            return [
                json.loads(r[0])
                for r in c.execute("SELECT row FROM sweep_results WHERE sweep_id = ? ORDER BY id", (sweep_id,))
            ]

    def sweeps(self, project: str | None = None) -> list[dict[str, Any]]:
        """Sweeps (of one project): id, label, config, created_at and the number of result rows, newest first."""
        with self._read() as c:
            query, args = (
                "SELECT s.*, (SELECT COUNT(*) FROM sweep_results r WHERE r.sweep_id = s.id) AS n "
                "FROM sweeps s WHERE 1 = 1",
                [],
            )
            if self.owner is not None:
                query, args = query + " AND s.owner = ?", [self.owner]
            if project is not None:
                query, args = query + " AND s.project_id = ?", [*args, self._project_id(c, project)]
            rows = c.execute(query + " ORDER BY s.id DESC", args).fetchall()
        return [
            {
                "id": r["id"],
                "label": r["label"],
                "config": json.loads(r["config"]),
                "created_at": r["created_at"],
                "rows": r["n"],
            }
            for r in rows
        ]


def _run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        project_id=row["project_id"],
        kind=row["kind"],
        config=json.loads(row["config"]),
        status=row["status"],
        metrics=json.loads(row["metrics"]),
        artifact_dir=row["artifact_dir"],
        error=row["error"],
        pid=row["pid"],
        host=row["host"],
        resumed_from=row["resumed_from"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


# ---- run owners -------------------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks since boot) of a Linux process; None where /proc has no answer."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], fields[19]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _owner() -> tuple[int, str, str | None]:
    """This process's (pid, host, start identity): enough to tell later whether it still runs."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    return pid, socket.gethostname(), f"{_boot_id()}:{stat[1]}" if stat else None


def _owner_alive(row: sqlite3.Row) -> bool:
    """Whether the process that owns a 'running' run still exists (a reused pid or a zombie does not count)."""
    pid, host = row["pid"], row["host"]
    if pid is None:
        return False
    if host != socket.gethostname():
        # Another machine (or a restarted container): only its heartbeat can tell.
        last = row["heartbeat_at"] or row["started_at"]
        age = (datetime.now(UTC) - datetime.fromisoformat(last)).total_seconds()
        return age < STALE_FOREIGN_RUN_S
    if pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by another user
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc (macOS): the pid exists, trust it
    if stat[0] in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    return row["pid_started"] in (None, f"{_boot_id()}:{stat[1]}")
