"""Curation: the statuses of a proposed pair, who acted, the stored counterfactuals with their history, the undoable
actions on them (`CurationMixin`, part of `cod.store.Store`), and which counterfactual of an example trains (one
rule, used by `Store.curated`, the app and the command line).

For each example: the counterfactual a person edited, else the one accepted; never a rejected one; a proposal
nobody reviewed only when the caller asks (`include_unreviewed`, and then a flipped one before one that is not).
Among several of the same kind, the latest wins (a newer edit or acceptance is the person's newer decision).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cod.counterfactuals import edits as E
from cod.counterfactuals.base import Counterfactual
from cod.errors import DataError, StoreError
from cod.store.runs import _dumps, _now

EDITED, ACCEPTED, PROPOSED = "edited", "accepted", "proposed"
STATUSES = (PROPOSED, ACCEPTED, "rejected", EDITED)
CURATED = (ACCEPTED, EDITED)  # the statuses whose pairs are used for training and exported as curated
PERSON = "person"  # the source of an action taken by a person rather than a proposer
UNDOABLE = ("edit", "accept", "reject", "reset")  # proposals and imports are not undone: reject them instead


def source_of(cf: Counterfactual) -> str:
    """Who made a counterfactual: `PERSON` for people's edits, else the proposer's name."""
    return PERSON if cf.proposer in ("human", PERSON) else (cf.proposer or "unknown")


def new_action(c: sqlite3.Connection, pid: int, kind: str, source: str, at: str, target: int | None = None) -> int:
    """Insert one action (a proposal, an edit, an import, an undo ...) of project `pid`; returns its id."""
    sql = "INSERT INTO actions (project_id, kind, source, target, at) VALUES (?, ?, ?, ?, ?)"
    return c.execute(sql, (pid, kind, source, target, at)).lastrowid


def example_key(record: CounterfactualRecord) -> int | str:
    """The example a counterfactual belongs to: its example id, else its original text."""
    return record.example_id if record.example_id is not None else str(record.record.get("text", ""))


def rank(record: CounterfactualRecord, include_unreviewed: bool = False) -> int:
    """How strongly a record claims its example's training slot: 3 edited by a person, 2 accepted, 1 an unreviewed
    flipped proposal, 0 an unreviewed unflipped one (only with `include_unreviewed`), -1 never (rejected...)."""
    if record.status == EDITED or (record.status == ACCEPTED and record.edited):
        return 3
    if record.status == ACCEPTED:
        return 2
    if record.status == PROPOSED and include_unreviewed and str(record.record.get("counterfactual") or "").strip():
        return 1 if _flipped(record) else 0
    return -1


def _flipped(record: CounterfactualRecord) -> bool:
    counterfactual = getattr(record, "counterfactual", None)
    return bool(counterfactual is not None and counterfactual.counterfactual_teacher_probs and counterfactual.flipped)


def choose(records: Iterable[CounterfactualRecord], include_unreviewed: bool = False) -> list[CounterfactualRecord]:
    """One record per example (the rule above), in the order the examples first appear."""
    best: dict[int | str, tuple[int, int, CounterfactualRecord]] = {}
    order: list[int | str] = []
    for r in records:
        key, score = example_key(r), rank(r, include_unreviewed)
        if key not in best and key not in order:
            order.append(key)
        if score < 0:
            continue
        if key not in best or (score, r.id) >= best[key][:2]:
            best[key] = (score, r.id, r)
    return [best[key][2] for key in order if key in best]


def counts(records: Sequence[CounterfactualRecord], include_unreviewed: bool = False) -> dict[str, int]:
    """Examples with a counterfactual that trains, by why (edited, accepted, unreviewed), and those without."""
    chosen = choose(records, include_unreviewed)
    kinds = [rank(r, include_unreviewed) for r in chosen]
    examples = len({example_key(r) for r in records})
    return {
        "edited": kinds.count(3),
        "accepted": kinds.count(2),
        "unreviewed": kinds.count(1) + kinds.count(0),
        "without": examples - len(chosen),
    }


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
        return dataclasses.replace(  # fluency None: the proposed text's says nothing about the edited one
            cf,
            counterfactual=self.text,
            counterfactual_teacher_probs=probs,
            edits=E.diff(cf.text, self.text),
            fluency=None,
        )


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


class CurationMixin:
    """The store's counterfactuals and their curation: proposals, accept/reject/edit as undoable actions, history.
    Mixed into `cod.store.Store`, whose plumbing (`_read`, `_write`, `_project_id`, `_labels_of`, `_owns`) it uses."""

    def _own_row(self, c: sqlite3.Connection, cf_id: int) -> sqlite3.Row:
        """The counterfactual `cf_id`, if it belongs to this owner's project (else as if it did not exist)."""
        row = _row(c, cf_id)
        owner = c.execute("SELECT owner FROM projects WHERE id = ?", (row["project_id"],)).fetchone()[0]
        if not self._owns(owner):
            raise StoreError(
                f"No counterfactual with id {cf_id}: it may belong to a deleted project; reload the list."
            )
        return row

    def _own_rows(self, c: sqlite3.Connection, cf_ids: Sequence[int]) -> list[sqlite3.Row]:
        return [self._own_row(c, i) for i in cf_ids]

    # ---- counterfactuals ----------------------------------------------------------------------------------------

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
            action = new_action(c, pid, "propose", source or source_of(counterfactuals[0]), now)
            ids = []
            for i, cf in enumerate(counterfactuals):
                record = _check_counterfactual(cf, labels, i)
                who = source or source_of(cf)
                ex_id = example_ids[i] if example_ids is not None else _find_example(c, pid, cf.text)
                state = {
                    "status": "proposed",
                    "text": cf.counterfactual,
                    "probs": list(cf.counterfactual_teacher_probs) or None,
                }
                cur = c.execute(
                    "INSERT INTO counterfactuals (project_id, example_id, record, status, current_text, "
                    "current_probs, source, created_at, updated_at) VALUES (?, ?, ?, 'proposed', ?, ?, ?, ?, ?)",
                    (pid, ex_id, _dumps(record), cf.counterfactual, _dumps(state["probs"]), who, now, now),
                )
                _history(c, action, cur.lastrowid, "propose", who, None, state, now)
                ids.append(cur.lastrowid)
            c.execute("UPDATE projects SET updated_at = ? WHERE id = ?", (now, pid))
            return [_record(r, labels) for r in _rows(c, ids)]

    def add_counterfactual(
        self, name: str, counterfactual: Counterfactual, source: str | None = None
    ) -> CounterfactualRecord:
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
        return [r.counterfactual for r in choose(self.counterfactuals(name), include_unreviewed)]

    def accept(self, cf_id: int, source: str = PERSON, expected_version: int | None = None) -> CounterfactualRecord:
        """Mark a counterfactual accepted (one action)."""
        return self.set_status([cf_id], "accepted", source, None if expected_version is None else [expected_version])[
            0
        ]

    def reject(self, cf_id: int, source: str = PERSON, expected_version: int | None = None) -> CounterfactualRecord:
        """Mark a counterfactual rejected (one action)."""
        return self.set_status([cf_id], "rejected", source, None if expected_version is None else [expected_version])[
            0
        ]

    def reset(self, cf_id: int, source: str = PERSON, expected_version: int | None = None) -> CounterfactualRecord:
        """Put a counterfactual back to 'proposed' (one action)."""
        return self.set_status([cf_id], "proposed", source, None if expected_version is None else [expected_version])[
            0
        ]

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
                    raise StoreError(
                        f"Counterfactual {row['id']} has no text (the proposer failed: {error}): "
                        "edit it before keeping it."
                    )
                action = action or new_action(c, pid, kind, source, now)
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
            raise StoreError(
                f"The edited text of counterfactual {cf_id} is empty: write a counterfactual or reject it."
            )
        with self._write() as c:
            row = self._own_row(c, cf_id)
            labels = self._labels_of(c, row["project_id"])
            _check_versions([row], None if expected_version is None else [expected_version])
            probs = (
                [float(p) for p in counterfactual_teacher_probs] if counterfactual_teacher_probs is not None else None
            )
            if probs is not None and len(probs) != len(labels):
                raise StoreError(
                    f"{len(probs)} teacher probabilities given for the edit of {cf_id}, "
                    f"but the project has {len(labels)} labels {labels}."
                )
            if text == row["current_text"] and (probs is None or probs == _state(row)["probs"]):
                return _record(row, labels)  # nothing changed: no action, no history line
            now = _now()
            action = new_action(c, row["project_id"], "edit", source, now)
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
                    "SELECT h.* FROM history h JOIN actions a ON a.id = h.action_id "
                    "WHERE a.project_id = ? ORDER BY h.id",
                    (self._project_id(c, project),),
                ).fetchall()
        return [_entry(r) for r in rows]

    def actions(self, name: str) -> list[Action]:
        """The project's user actions, oldest first."""
        with self._read() as c:
            rows = c.execute(
                "SELECT * FROM actions WHERE project_id = ? ORDER BY id", (self._project_id(c, name),)
            ).fetchall()
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
            action = new_action(c, pid, kind, source, now, target=target)
            order = "DESC" if kind == "undo" else "ASC"  # undo reverts changes last-first
            for h in c.execute(f"SELECT * FROM history WHERE action_id = ? ORDER BY id {order}", (target,)).fetchall():
                state = json.loads(h["before"] if kind == "undo" else h["after"])
                _apply(c, action, _row(c, h["counterfactual_id"]), kind, source, state, now)
            c.execute("UPDATE projects SET updated_at = ? WHERE id = ?", (now, pid))
            return _action(c, c.execute("SELECT * FROM actions WHERE id = ?", (action,)).fetchone())


# ---- row helpers ------------------------------------------------------------------------------------------------


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise StoreError(f"Status {status!r} is not one of {list(STATUSES)}.")


def _check_counterfactual(cf: Counterfactual, labels: list[str], i: int) -> dict[str, Any]:
    n = len(labels)
    for what, value in (("label", cf.label), ("target", cf.target)):
        if not isinstance(value, int) or not 0 <= value < n:
            raise DataError(
                f"Counterfactual {i} ({cf.text[:60]!r}) has {what} {value!r}, outside the project's labels {labels}."
            )
    for what, probs in (
        ("teacher_probs", cf.teacher_probs),
        ("counterfactual_teacher_probs", cf.counterfactual_teacher_probs),
    ):
        if probs and len(probs) != n:
            raise DataError(
                f"Counterfactual {i} has {len(probs)} {what} for the project's {n} labels {labels}: "
                "use the project's teacher."
            )
    return cf.to_record(labels)


def _find_example(c: sqlite3.Connection, pid: int, text: str) -> int | None:
    row = c.execute(
        "SELECT id FROM examples WHERE project_id = ? AND text = ? ORDER BY split != 'train', id LIMIT 1", (pid, text)
    ).fetchone()
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
        raise StoreError(
            f"One action changes one project's counterfactuals; these belong to projects {sorted(projects)}."
        )
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
    return {
        "status": row["status"],
        "text": row["current_text"],
        "probs": json.loads(row["current_probs"]) if row["current_probs"] else None,
    }


def _history(
    c: sqlite3.Connection, action: int, cf_id: int, kind: str, source: str, before: Any, after: Any, at: str
) -> None:
    c.execute(
        "INSERT INTO history (action_id, counterfactual_id, kind, source, before, after, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            action,
            cf_id,
            kind,
            source,
            None if before is None else _dumps(before),
            None if after is None else _dumps(after),
            at,
        ),
    )


def _apply(
    c: sqlite3.Connection, action: int, row: sqlite3.Row, kind: str, source: str, state: dict[str, Any], at: str
) -> None:
    """Set a counterfactual to `state` and log the change with the state it replaced."""
    c.execute(
        "UPDATE counterfactuals SET status = ?, current_text = ?, current_probs = ?, version = version + 1, "
        "updated_at = ? WHERE id = ?",
        (
            state["status"],
            state["text"],
            _dumps(state["probs"]) if state.get("probs") is not None else None,
            at,
            row["id"],
        ),
    )
    _history(c, action, row["id"], kind, source, _state(row), state, at)


def _undo_stacks(c: sqlite3.Connection, pid: int) -> tuple[list[int], list[int]]:
    """Replay the action log: (actions that can be undone, actions that can be redone), each newest last."""
    done: list[int] = []
    undone: list[int] = []
    kinds = (*UNDOABLE, "undo", "redo")
    rows = c.execute(
        f"SELECT id, kind, target FROM actions WHERE project_id = ? AND kind IN ({', '.join('?' * len(kinds))}) "
        "ORDER BY id",
        (pid, *kinds),
    )
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


def _record(row: sqlite3.Row, labels: Sequence[str]) -> CounterfactualRecord:
    return CounterfactualRecord(
        id=row["id"],
        project_id=row["project_id"],
        example_id=row["example_id"],
        status=row["status"],
        text=row["current_text"],
        probs=json.loads(row["current_probs"]) if row["current_probs"] else None,
        source=row["source"],
        version=row["version"],
        record=json.loads(row["record"]),
        label_names=tuple(labels),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _entry(row: sqlite3.Row) -> HistoryEntry:
    return HistoryEntry(
        id=row["id"],
        action_id=row["action_id"],
        counterfactual_id=row["counterfactual_id"],
        kind=row["kind"],
        source=row["source"],
        before=json.loads(row["before"]) if row["before"] else None,
        after=json.loads(row["after"]) if row["after"] else None,
        at=row["at"],
    )


def _action(c: sqlite3.Connection, row: sqlite3.Row) -> Action:
    ids = tuple(
        r[0] for r in c.execute("SELECT counterfactual_id FROM history WHERE action_id = ? ORDER BY id", (row["id"],))
    )
    target_kind = None
    if row["target"] is not None:
        target_kind = c.execute("SELECT kind FROM actions WHERE id = ?", (row["target"],)).fetchone()[0]
    return Action(
        id=row["id"],
        project_id=row["project_id"],
        kind=row["kind"],
        source=row["source"],
        target=row["target"],
        target_kind=target_kind,
        counterfactual_ids=ids,
        at=row["at"],
    )
