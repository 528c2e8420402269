"""Curation: the statuses of a proposed pair, who acted, the action row every change hangs its history from, and
which counterfactual of an example trains (one rule, used by `Store.curated`, the app and the command line).

For each example: the counterfactual a person edited, else the one accepted; never a rejected one; a proposal
nobody reviewed only when the caller asks (`include_unreviewed`, and then a flipped one before one that is not).
Among several of the same kind, the latest wins (a newer edit or acceptance is the person's newer decision).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from cod.counterfactuals.base import Counterfactual

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


class _Record(Protocol):  # cod.store.projects.CounterfactualRecord (not imported: the store imports this module)
    id: int
    example_id: int | None
    status: str
    record: dict[str, Any]

    @property
    def edited(self) -> bool: ...


def example_key(record: _Record) -> int | str:
    """The example a counterfactual belongs to: its example id, else its original text."""
    return record.example_id if record.example_id is not None else str(record.record.get("text", ""))


def rank(record: _Record, include_unreviewed: bool = False) -> int:
    """How strongly a record claims its example's training slot: 3 edited by a person, 2 accepted, 1 an unreviewed
    flipped proposal, 0 an unreviewed unflipped one (only with `include_unreviewed`), -1 never (rejected...)."""
    if record.status == EDITED or (record.status == ACCEPTED and record.edited):
        return 3
    if record.status == ACCEPTED:
        return 2
    if record.status == PROPOSED and include_unreviewed and str(record.record.get("counterfactual") or "").strip():
        return 1 if _flipped(record) else 0
    return -1


def _flipped(record: _Record) -> bool:
    counterfactual = getattr(record, "counterfactual", None)
    return bool(counterfactual is not None and counterfactual.counterfactual_teacher_probs and counterfactual.flipped)


def choose(records: Iterable[_Record], include_unreviewed: bool = False) -> list[_Record]:
    """One record per example (the rule above), in the order the examples first appear."""
    best: dict[int | str, tuple[int, int, _Record]] = {}
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


def counts(records: Sequence[_Record], include_unreviewed: bool = False) -> dict[str, int]:
    """Examples with a counterfactual that trains, by why (edited, accepted, unreviewed), and those without."""
    chosen = choose(records, include_unreviewed)
    kinds = [rank(r, include_unreviewed) for r in chosen]
    examples = len({example_key(r) for r in records})
    return {"edited": kinds.count(3), "accepted": kinds.count(2), "unreviewed": kinds.count(1) + kinds.count(0),
            "without": examples - len(chosen)}
