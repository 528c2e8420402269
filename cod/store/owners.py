"""Owners' lifetimes in the project store (mixed into `cod.store.projects.Store`): anonymous visitors of a public app
leave projects, runs and sweeps behind; once none of an anonymous owner's rows changed for the retention period,
all of them go (their run folders and exports are removed by the app alongside).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from cod.errors import StoreError

ANONYMOUS = "anon:"  # the prefix of anonymous owners ('hf:<user>' and the local '' are never expired)

# The latest change of each anonymous owner, over every table that records one (ISO 8601 UTC strings sort as times).
_LAST_CHANGE = """
SELECT owner, MAX(at) AS last FROM (
    SELECT owner, updated_at AS at FROM projects
    UNION ALL SELECT owner, MAX(started_at, COALESCE(finished_at, ''), COALESCE(heartbeat_at, '')) FROM runs
    UNION ALL SELECT owner, created_at FROM sweeps
) WHERE owner LIKE 'anon:%' GROUP BY owner
"""


class OwnersMixin:
    """Owner-wide methods of `Store`; they use its `_write` and `owner`."""

    def remove_expired_owners(self, max_age_hours: float, now: datetime | None = None) -> list[str]:
        """Delete every project, run and sweep of the anonymous owners none of whose rows changed for `max_age_hours`
        (a running run's heartbeat counts as a change); returns those owners. Only the unscoped store may."""
        if getattr(self, "owner", None) is not None:
            raise StoreError("Only the unscoped store (Store(path), the app's owner) may remove other owners' rows.")
        cutoff = ((now or datetime.now(UTC)) - timedelta(hours=max_age_hours)).isoformat(timespec="microseconds")
        with self._write() as c:
            expired = [row[0] for row in c.execute(_LAST_CHANGE) if row[1] < cutoff]
            for owner in expired:
                _delete_owner(c, owner)
        return expired


def _delete_owner(c: sqlite3.Connection, owner: str) -> None:
    """Every row of one owner: their sweeps, their runs recorded without a project, then their projects (examples,
    counterfactuals, history and runs go with them by cascade)."""
    c.execute("DELETE FROM sweeps WHERE owner = ?", (owner,))
    mine = "SELECT id FROM runs WHERE owner = ?"
    c.execute(f"UPDATE runs SET resumed_from = NULL WHERE resumed_from IN ({mine})", (owner,))
    c.execute("DELETE FROM runs WHERE owner = ? AND project_id IS NULL", (owner,))
    c.execute("DELETE FROM projects WHERE owner = ?", (owner,))
