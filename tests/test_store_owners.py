"""Owners in the store (schema v3): each owner sees and changes only their projects, runs and sweeps; the unscoped
store (the CLI, the Space's owner) sees everything; a version-2 file migrates with every row and id kept."""

import sqlite3

import pytest

from cod.counterfactuals.base import Counterfactual
from cod.data.readers import Example
from cod.errors import StoreError
from cod.store import db as schema
from cod.store.projects import Store

LABELS = ["negative", "positive"]
EXAMPLES = [Example("a good film", 1), Example("a bad film", 0)]


def proposal(text="a good film", cf="a bad film"):
    return Counterfactual(text, 1, [0.1, 0.9], cf, 0, [0.8, 0.2], proposer="lexical")


@pytest.fixture
def stores(tmp_path):
    admin = Store(tmp_path / "cod.db")
    yield admin, admin.for_owner("anon:alice"), admin.for_owner("anon:bob")
    admin.close()


def test_two_owners_cannot_see_open_change_or_resume_each_others_work(stores):
    admin, alice, bob = stores
    alice.create_project("rt", LABELS, examples=EXAMPLES)
    bob.create_project("rt", LABELS, examples=EXAMPLES[:1])  # the same name: names are per owner
    [cf] = alice.add_counterfactuals("rt", [proposal()])
    run = alice.start_run("rt", {"method": "kd"})
    alice.finish_run(run.id, "stopped")
    sweep = alice.add_sweep("rt", {"grid": 1})

    assert [p.name for p in alice.projects()] == ["rt"] and len(bob.examples("rt")) == 1
    assert bob.counterfactuals("rt") == [] and bob.runs() == [] and bob.sweeps() == []
    for attempt in (
        lambda: bob.counterfactual(cf.id),
        lambda: bob.accept(cf.id),
        lambda: bob.edit(cf.id, "x"),
        lambda: bob.history(cf_id=cf.id),
        lambda: bob.run(run.id),
        lambda: bob.resume_run(run.id),
        lambda: bob.log_event(run.id, {"kind": "x"}),
        lambda: bob.sweep_results(sweep),
    ):
        with pytest.raises(StoreError):
            attempt()
    assert alice.counterfactual(cf.id).status == "proposed"  # untouched by bob's attempts
    assert alice.resume_run(run.id).resumed_from == run.id
    assert {p.owner for p in admin.projects()} == {"anon:alice", "anon:bob"}  # the CLI sees everything
    assert len(admin.runs()) == 2


def test_the_no_project_error_lists_nothing_and_shows_no_path(stores, tmp_path):
    admin, alice, bob = stores
    alice.create_project("alice-secret-project", LABELS, examples=EXAMPLES)
    with pytest.raises(StoreError) as err:
        bob.project("nope")
    assert "alice-secret-project" not in str(err.value) and str(tmp_path) not in str(err.value)
    with pytest.raises(StoreError):
        bob.project("alice-secret-project")


def test_a_version_2_file_migrates_to_owners_keeping_every_row(tmp_path):
    path = tmp_path / "cod.db"
    conn = sqlite3.connect(path, isolation_level=None)
    schema._executescript(conn, schema.SCHEMA_V2)
    now = "2026-01-01T00:00:00+00:00"
    conn.execute(
        "INSERT INTO projects (id, name, label_names, created_at, updated_at) VALUES (5, 'old', ?, ?, ?)",
        ('["negative", "positive"]', now, now),
    )
    conn.execute("INSERT INTO examples (id, project_id, position, text, label) VALUES (9, 5, 0, 'a good film', 1)")
    conn.execute(
        "INSERT INTO runs (id, project_id, config, status, started_at) VALUES (3, 5, '{}', 'done', ?)", (now,)
    )
    conn.execute("INSERT INTO sweeps (id, project_id, config, created_at) VALUES (2, 5, '{}', ?)", (now,))
    conn.close()

    store = Store(path)
    assert store.schema_version() == 3 and store.backup_path is not None and store.backup_path.exists()
    [project] = store.projects()
    assert (project.id, project.name, project.owner) == (5, "old", "")
    assert store.example_rows("old") == [(9, Example("a good film", 1))] and store.run(3).project_id == 5
    assert store.for_owner("").examples("old") and store.for_owner("anon:x").projects() == []
    store.for_owner("anon:x").create_project("old", LABELS)  # the old UNIQUE(name) is gone
    with store._read() as c:
        assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
    store.for_owner("").delete_project("old")  # cascades still work after the rebuild
    assert store.runs() == [] and store.sweeps() == []
    store.close()


def test_the_cli_lists_every_owners_projects(tmp_path, capsys):
    from cod.cli import main

    admin = Store(tmp_path / "cod.db")
    admin.for_owner("anon:alice").create_project("rt", LABELS, examples=EXAMPLES)
    admin.for_owner("hf:bob").create_project("rt", LABELS, examples=EXAMPLES[:1])
    admin.close()
    assert main(["project", "--db", str(tmp_path / "cod.db"), "list"]) == 0
    out = capsys.readouterr().out
    assert "anon:alice" in out and "hf:bob" in out and out.count("rt ") == 2


def test_expired_anonymous_owners_lose_their_projects_runs_and_sweeps(tmp_path):
    from datetime import UTC, datetime, timedelta

    admin = Store(tmp_path / "cod.db")
    old, fresh, user = admin.for_owner("anon:old"), admin.for_owner("anon:fresh"), admin.for_owner("hf:alice")
    local = admin.for_owner("")
    for owner in (old, user, local):
        owner.create_project("rt", LABELS, examples=EXAMPLES)
        owner.add_counterfactuals("rt", [proposal()])
        first = owner.start_run("rt", {"method": "kd"})
        owner.finish_run(first.id, "stopped")
        owner.resume_run(first.id)  # a run that refers to another
        owner.add_sweep("rt", {"grid": 1})
    old.add_sweep(None, {"grid": 2})  # rows without a project go too
    old.start_run(None, {"method": "ce"})
    between = datetime.now(UTC)
    fresh.create_project("rt", LABELS, examples=EXAMPLES)

    assert admin.remove_expired_owners(1, now=between) == []  # nothing is an hour old yet
    with pytest.raises(StoreError, match="unscoped"):
        fresh.remove_expired_owners(1, now=between + timedelta(hours=1))  # a visitor cannot expire others
    assert admin.remove_expired_owners(1, now=between + timedelta(hours=1)) == ["anon:old"]
    admin.close()

    reopened = Store(tmp_path / "cod.db")  # what is on disk
    assert sorted(p.owner for p in reopened.projects()) == ["", "anon:fresh", "hf:alice"]
    assert {r.config["method"] for r in reopened.runs()} == {"kd"} and len(reopened.runs()) == 4
    assert len(reopened.sweeps()) == 2
    db = sqlite3.connect(tmp_path / "cod.db")
    owners = {row[0] for row in db.execute("SELECT owner FROM runs UNION SELECT owner FROM sweeps")}
    assert "anon:old" not in owners
    # the expired project's examples, counterfactuals and their history went with it (the others' stay)
    assert db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] == 3 * len(EXAMPLES)
    assert db.execute("SELECT COUNT(*) FROM counterfactuals").fetchone()[0] == 2
    assert db.execute("SELECT COUNT(DISTINCT project_id) FROM actions").fetchone()[0] == 2
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()
    reopened.close()
