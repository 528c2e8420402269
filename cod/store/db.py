"""The store's SQLite schema: every version's DDL and the migrations between them.

Version 1 was the first layout (projects, examples, counterfactuals with a bare status log, runs with their
events inlined as JSON). Version 2 adds what curation needs to be undoable and traceable: per-change history
with before/after states grouped into user actions, a separate run event timeline, run owners (pid, host)
so cut-off runs can be told from live ones, and sweep results. Version 3 gives every project, run and sweep an
`owner` (the account that made it: '' locally, 'hf:<user>' or 'anon:<id>' on a public Space); project names are
unique per owner. A migration runs inside one transaction (with foreign keys off, so rebuilding `projects` cascades
nothing), after the store has written a backup copy of the file.
"""

from __future__ import annotations

import sqlite3

CURRENT_VERSION = 3

# The original layout, kept verbatim: tests build a real version-1 file from it and migrate it.
SCHEMA_V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    label_names TEXT NOT NULL,
    teacher TEXT NOT NULL,
    student TEXT NOT NULL,
    k INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE examples (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    text TEXT NOT NULL,
    label INTEGER NOT NULL
);
CREATE TABLE counterfactuals (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    example_id INTEGER REFERENCES examples(id),
    record TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE history (
    id INTEGER PRIMARY KEY,
    counterfactual_id INTEGER NOT NULL REFERENCES counterfactuals(id),
    action TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    project_id INTEGER REFERENCES projects(id),
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    metrics TEXT,
    events TEXT,
    created_at TEXT NOT NULL
);
INSERT INTO schema_version (version) VALUES (1);
"""

_PROJECTS_V2 = """
CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL DEFAULT '',
    data_source TEXT NOT NULL DEFAULT '',
    columns TEXT NOT NULL DEFAULT '{}',       -- JSON: {"text": ..., "label": ..., "text_pair": ...}
    label_names TEXT NOT NULL,                -- JSON list
    teacher TEXT NOT NULL DEFAULT 'demo',
    student TEXT NOT NULL DEFAULT 'demo',
    k INTEGER NOT NULL DEFAULT 16,
    seed INTEGER NOT NULL DEFAULT 0,
    settings TEXT NOT NULL DEFAULT '{}',      -- JSON: anything else the app keeps per project
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

_EXAMPLES_V2 = """
CREATE TABLE examples (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    split TEXT NOT NULL DEFAULT 'train',
    position INTEGER NOT NULL,                -- row order within (project, split)
    text TEXT NOT NULL,
    text_pair TEXT,
    label INTEGER NOT NULL,
    UNIQUE (project_id, split, position)
);
CREATE INDEX examples_text ON examples (project_id, text);
"""

_COUNTERFACTUALS_V2 = """
CREATE TABLE counterfactuals (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    example_id INTEGER REFERENCES examples(id) ON DELETE SET NULL,
    record TEXT NOT NULL,                     -- Counterfactual.to_record() as proposed (JSON)
    status TEXT NOT NULL CHECK (status IN ('proposed', 'accepted', 'rejected', 'edited')),
    current_text TEXT NOT NULL,               -- the counterfactual text now, after any edits
    current_probs TEXT,                       -- JSON list: teacher on current_text, NULL when not scored
    source TEXT NOT NULL,                     -- the proposer's name, or 'person'
    version INTEGER NOT NULL DEFAULT 1,       -- bumped on every change (optimistic checks by callers)
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX counterfactuals_project ON counterfactuals (project_id, status);
"""

_ACTIONS_AND_HISTORY_V2 = """
CREATE TABLE actions (                        -- one row per user action (one transaction, one undo step)
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,                       -- propose edit accept reject reset import undo redo migrated
    source TEXT NOT NULL,
    target INTEGER REFERENCES actions(id),    -- the action an undo/redo applies to
    at TEXT NOT NULL
);
CREATE INDEX actions_project ON actions (project_id, id);
CREATE TABLE history (                        -- one row per counterfactual changed by an action
    id INTEGER PRIMARY KEY,
    action_id INTEGER NOT NULL REFERENCES actions(id) ON DELETE CASCADE,
    counterfactual_id INTEGER NOT NULL REFERENCES counterfactuals(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    before TEXT,                              -- JSON {"status", "text", "probs"}; NULL for a proposal
    after TEXT,
    at TEXT NOT NULL
);
CREATE INDEX history_counterfactual ON history (counterfactual_id, id);
CREATE INDEX history_action ON history (action_id);
"""

_RUNS_V2 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL DEFAULT 'distill',
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted', 'stopped')),
    metrics TEXT NOT NULL DEFAULT '{}',
    artifact_dir TEXT,
    error TEXT NOT NULL DEFAULT '',
    pid INTEGER,                              -- owner process while running
    host TEXT,
    pid_started TEXT,                         -- the owner's start time, so a reused pid is not mistaken for it
    heartbeat_at TEXT,
    resumed_from INTEGER REFERENCES runs(id),
    started_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX runs_status ON runs (status);
CREATE TABLE run_events (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,                    -- JSON
    at TEXT NOT NULL
);
CREATE INDEX run_events_run ON run_events (run_id, id);
"""

_SWEEPS_V2 = """
CREATE TABLE sweeps (
    id INTEGER PRIMARY KEY,
    project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE,
    label TEXT NOT NULL DEFAULT '',
    config TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE sweep_results (
    id INTEGER PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    row TEXT NOT NULL                         -- JSON: one results.csv row
);
CREATE INDEX sweep_results_sweep ON sweep_results (sweep_id, id);
"""

_PROJECTS_V3 = _PROJECTS_V2.replace(
    "    name TEXT NOT NULL UNIQUE,\n",
    "    owner TEXT NOT NULL DEFAULT '',           -- '' local; 'hf:<user>' or 'anon:<id>'\n    name TEXT NOT NULL,\n",
).replace("    updated_at TEXT NOT NULL\n);", "    updated_at TEXT NOT NULL,\n    UNIQUE (owner, name)\n);")
_OWNERS_V3 = """
ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE sweeps ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_owner ON runs (owner);
CREATE INDEX sweeps_owner ON sweeps (owner);
"""

SCHEMA_V2 = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL);\n"
    + _PROJECTS_V2
    + _EXAMPLES_V2
    + _COUNTERFACTUALS_V2
    + _ACTIONS_AND_HISTORY_V2
    + _RUNS_V2
    + _SWEEPS_V2
    + "INSERT INTO schema_version (version) VALUES (2);\n"
)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Rebuild every table in the version-2 layout and copy the version-1 rows across."""
    for table in ("projects", "examples", "counterfactuals", "history", "runs"):
        conn.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
    # Renaming also rewrote the old tables' REFERENCES clauses; they are dropped below, so that is harmless.
    _executescript(
        conn, _PROJECTS_V2 + _EXAMPLES_V2 + _COUNTERFACTUALS_V2 + _ACTIONS_AND_HISTORY_V2 + _RUNS_V2 + _SWEEPS_V2
    )
    conn.execute(
        "INSERT INTO projects (id, name, task, data_source, label_names, teacher, student, k, created_at, updated_at) "
        "SELECT id, name, task, task, label_names, teacher, student, k, created_at, created_at FROM old_projects"
    )
    conn.execute(
        "INSERT INTO examples (id, project_id, split, position, text, label) "
        "SELECT id, project_id, 'train', ROW_NUMBER() OVER (PARTITION BY project_id ORDER BY id) - 1, text, label "
        "FROM old_examples"
    )
    # Version 1 knew no edits: the current text is the proposed one, the source is the proposer.
    conn.execute(
        "INSERT INTO counterfactuals (id, project_id, example_id, record, status, current_text, current_probs, "
        "source, created_at, updated_at) "
        "SELECT id, project_id, example_id, record, "
        "CASE WHEN status IN ('proposed', 'accepted', 'rejected', 'edited') THEN status ELSE 'proposed' END, "
        "COALESCE(json_extract(record, '$.counterfactual'), ''), NULL, "
        "COALESCE(json_extract(record, '$.proposer'), 'unknown'), created_at, created_at FROM old_counterfactuals"
    )
    # Old log lines become one 'migrated' action per project: kept for provenance, not undoable (no before state).
    conn.execute(
        "INSERT INTO actions (project_id, kind, source, at) "
        "SELECT DISTINCT c.project_id, 'migrated', 'migration', (SELECT MIN(at) FROM old_history) "
        "FROM old_history h JOIN old_counterfactuals c ON c.id = h.counterfactual_id"
    )
    conn.execute(
        "INSERT INTO history (action_id, counterfactual_id, kind, source, before, after, at) "
        "SELECT a.id, h.counterfactual_id, h.action, "
        "CASE WHEN h.action IN ('accept', 'reject', 'edit') THEN 'person' "
        "ELSE COALESCE(json_extract(c.record, '$.proposer'), 'unknown') END, NULL, NULL, h.at "
        "FROM old_history h JOIN old_counterfactuals c ON c.id = h.counterfactual_id "
        "JOIN actions a ON a.project_id = c.project_id AND a.kind = 'migrated' ORDER BY h.id"
    )
    conn.execute(
        "INSERT INTO runs (id, project_id, kind, config, status, metrics, started_at) "
        "SELECT id, project_id, 'distill', config, "
        "CASE WHEN status IN ('running', 'done', 'failed', 'interrupted', 'stopped') THEN status ELSE 'failed' END, "
        "COALESCE(metrics, '{}'), created_at FROM old_runs"
    )
    conn.execute(
        "INSERT INTO run_events (run_id, kind, payload, at) "
        "SELECT r.id, COALESCE(json_extract(e.value, '$.kind'), 'event'), e.value, r.created_at "
        "FROM old_runs r, json_each(CASE WHEN json_valid(r.events) THEN r.events ELSE '[]' END) e ORDER BY r.id, e.key"
    )
    for table in ("history", "runs", "counterfactuals", "examples", "projects"):
        conn.execute(f"DROP TABLE old_{table}")


SCHEMA_V3 = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL);\n"
    + _PROJECTS_V3
    + _EXAMPLES_V2
    + _COUNTERFACTUALS_V2
    + _ACTIONS_AND_HISTORY_V2
    + _RUNS_V2
    + _SWEEPS_V2
    + _OWNERS_V3
    + "CREATE INDEX projects_owner ON projects (owner, updated_at);\n"
    + "INSERT INTO schema_version (version) VALUES (3);\n"
)

# Version 3 applied to a new file (the latest layout).
SCHEMA = SCHEMA_V3


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Owners: rebuild `projects` with an owner column (names unique per owner), add owners to runs and sweeps.

    Every existing row belongs to the local owner ''. The caller has turned foreign keys off, so dropping the old
    `projects` deletes no example, counterfactual or run; the rebuilt table keeps every id."""
    _executescript(conn, _PROJECTS_V3.replace("CREATE TABLE projects", "CREATE TABLE new_projects"))
    columns = (
        "id, name, task, data_source, columns, label_names, teacher, student, k, seed, settings, created_at, "
        "updated_at"
    )
    conn.execute(f"INSERT INTO new_projects ({columns}) SELECT {columns} FROM projects")
    conn.execute("DROP TABLE projects")
    conn.execute("ALTER TABLE new_projects RENAME TO projects")
    _executescript(conn, _OWNERS_V3 + "CREATE INDEX projects_owner ON projects (owner, updated_at);\n")
    broken = conn.execute("PRAGMA foreign_key_check").fetchall()
    if broken:  # raising rolls the whole migration back
        raise sqlite3.IntegrityError(f"foreign keys broken by the version-3 migration: {broken[:5]}")


# MIGRATIONS[v] turns a version-v database into version v + 1.
MIGRATIONS = {1: _migrate_1_to_2, 2: _migrate_2_to_3}


def _executescript(conn: sqlite3.Connection, script: str) -> None:
    # sqlite3.executescript() would COMMIT the open transaction first; run statements one by one instead.
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):  # a ';' inside a comment or string does not end a statement
            if statement.strip(" \n;"):
                conn.execute(statement)
            statement = ""
