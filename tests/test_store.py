"""The project store on real SQLite files: projects, curation with history, undo/redo, runs, sweeps, migration from
schema version 1, export/import round trips and bad files. Process-level tests live in test_store_crash.py."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from cod.counterfactuals.base import Counterfactual
from cod.data.readers import Example
from cod.errors import DataError, StoreError
from cod.store.db import CURRENT_VERSION, SCHEMA_V1
from cod.store.projects import Store

LABELS = ["negative", "positive"]
EXAMPLES = [Example("a good film", 1), Example("a bad film", 0), Example("great fun", 1), Example("a dull mess", 0)]


def cf(text: str, new: str, label: int, proposer: str = "lexical", probs=None) -> Counterfactual:
    p = [0.2, 0.8] if label else [0.8, 0.2]
    return Counterfactual(
        text, label, p, new, 1 - label, probs if probs is not None else p[::-1], proposer, model="m1", attempts=3
    )


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "cod.db")
    s.create_project(
        "rt",
        LABELS,
        examples=EXAMPLES,
        task="rotten_tomatoes",
        data_source="rt.csv",
        columns={"text": "text", "label": "label"},
        k=4,
        seed=3,
        settings={"alpha": 20},
    )
    yield s
    s.close()


def curated_project(store: Store) -> list[int]:
    """Four proposals, then: accept, edit (scored), reject, edit (unscored) then accept; returns the ids."""
    recs = store.add_counterfactuals(
        "rt",
        [
            cf("a good film", "a bad film", 1),
            cf("a bad film", "a fine film", 0, "llm"),
            cf("great fun", "great pain", 1),
            cf("a dull mess", "a lively mess", 0, "llm"),
        ],
    )
    ids = [r.id for r in recs]
    store.accept(ids[0])
    store.edit(ids[1], "a truly fine film", counterfactual_teacher_probs=[0.1, 0.9])
    store.reject(ids[2])
    store.edit(ids[3], "a lively, fun mess")
    store.accept(ids[3])
    return ids


def test_default_path_is_cod_home(cod_home, monkeypatch):
    monkeypatch.delenv("COD_DB", raising=False)
    with Store() as s:
        assert s.path == cod_home / "cod.db"
        mode = sqlite3.connect(s.path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal" and s.schema_version() == CURRENT_VERSION
    monkeypatch.setenv("COD_DB", str(cod_home / "other.db"))
    with Store() as s:
        assert s.path == cod_home / "other.db"


def test_projects(store):
    p = store.project("rt")
    assert (p.label_names, p.k, p.seed, p.teacher, p.task, p.settings) == (
        LABELS,
        4,
        3,
        "demo",
        "rotten_tomatoes",
        {"alpha": 20},
    )
    assert store.examples("rt") == EXAMPLES
    with pytest.raises(StoreError, match="'rt' already exists"):
        store.create_project("rt", LABELS)
    with pytest.raises(StoreError, match=r"No project named 'nope'.*\['rt'\]"):
        store.project("nope")
    with pytest.raises(DataError, match="at least 2 distinct"):
        store.create_project("one", ["only"])
    with pytest.raises(DataError, match="label 5"):
        store.create_project("bad", LABELS, examples=[Example("x", 5)])
    assert [q.name for q in store.projects()] == ["rt"]  # the failed creations left nothing behind
    store.update_project("rt", student="some/student", k=8)
    assert store.update_settings("rt", beta=1, alpha=None) == {"beta": 1}
    p = store.project("rt")
    assert (p.student, p.k, p.settings) == ("some/student", 8, {"beta": 1})
    ids = store.add_examples("rt", [Example("held out", 1)], split="validation")
    assert store.examples("rt", "validation") == [Example("held out", 1)] and len(ids) == 1
    store.delete_project("rt")
    assert store.projects() == []


def test_curation_history_sources_and_status(store):
    ids = curated_project(store)
    recs = {r.id: r for r in store.counterfactuals("rt")}
    assert [recs[i].status for i in ids] == ["accepted", "edited", "rejected", "accepted"]
    assert [recs[i].source for i in ids] == ["lexical", "llm", "lexical", "llm"]
    assert recs[ids[0]].example_id is not None  # linked to the project's example with the same text
    edited = recs[ids[1]]
    assert edited.edited and edited.proposed_text == "a fine film" and edited.probs == [0.1, 0.9]
    assert edited.counterfactual.counterfactual == "a truly fine film" and edited.counterfactual.flipped
    unscored = recs[ids[3]].counterfactual
    assert unscored.counterfactual_teacher_probs == [] and not unscored.flipped  # no stale verdict after an edit
    assert [c.counterfactual for c in store.curated("rt")] == ["a bad film", "a truly fine film", "a lively, fun mess"]
    history = store.history(ids[3])
    assert [(h.kind, h.source) for h in history] == [("propose", "llm"), ("edit", "person"), ("accept", "person")]
    assert history[1].before == {"status": "proposed", "text": "a lively mess", "probs": [0.2, 0.8]}
    assert history[1].after == {"status": "edited", "text": "a lively, fun mess", "probs": None}
    assert all(a.at <= b.at for a, b in zip(history, history[1:]))
    assert len(store.history(project="rt")) == 4 + 5


def test_curation_errors(store):
    rec = store.add_counterfactual("rt", cf("a good film", "a bad film", 1))
    with pytest.raises(StoreError, match="changed since it was loaded"):
        store.accept(rec.id, expected_version=rec.version + 1)
    store.accept(rec.id, expected_version=rec.version)
    with pytest.raises(StoreError, match="empty"):
        store.edit(rec.id, "   ")
    failed = store.add_counterfactual(
        "rt", Counterfactual("great fun", 1, [0.2, 0.8], "", 0, [], "llm", error="timed out")
    )
    with pytest.raises(StoreError, match="timed out"):
        store.accept(failed.id)
    with pytest.raises(DataError, match="3 counterfactual_teacher_probs"):
        store.add_counterfactual("rt", cf("x", "y", 1, probs=[0.1, 0.2, 0.7]))
    with pytest.raises(StoreError, match="No counterfactual with id 999"):
        store.reject(999)


def test_undo_redo_from_history_and_across_reopen(store, tmp_path):
    ids = curated_project(store)
    store.accept(ids[2])
    assert store.undo("rt").target_kind == "accept"  # ids[2] back to rejected
    assert store.counterfactual(ids[2]).status == "rejected"
    store.close()
    with Store(tmp_path / "cod.db") as again:  # the undo stack lives in the file
        assert again.can_redo("rt")
        assert again.undo("rt").target_kind == "accept"  # ids[3] accept
        assert again.undo("rt").target_kind == "edit"  # ids[3] edit
        assert (
            again.counterfactual(ids[3]).status == "proposed" and again.counterfactual(ids[3]).text == "a lively mess"
        )
        assert again.redo("rt").target_kind == "edit"
        assert again.counterfactual(ids[3]).text == "a lively, fun mess"
        again.reject(ids[0])  # a new action clears the redo list
        assert not again.can_redo("rt") and again.redo("rt") is None
        # One action over several counterfactuals is one undo step.
        again.set_status([ids[0], ids[1], ids[2]], "accepted")
        assert [again.counterfactual(i).status for i in ids[:3]] == ["accepted"] * 3
        action = again.undo("rt")
        assert set(action.counterfactual_ids) == set(ids[:3])
        assert [again.counterfactual(i).status for i in ids[:3]] == ["rejected", "edited", "rejected"]
        while again.undo("rt"):
            pass
        assert [r.status for r in again.counterfactuals("rt")] == ["proposed"] * 4  # proposals themselves stay
        assert [r.text for r in again.counterfactuals("rt")] == [
            "a bad film",
            "a fine film",
            "great pain",
            "a lively mess",
        ]
        kinds = [h.kind for h in again.history(ids[3])]
        assert kinds[-1] == "undo" and "redo" in kinds  # undo and redo are history too


def test_runs_events_and_resume(store):
    run = store.start_run("rt", {"method": "kd", "cod": True}, artifact_dir="/tmp/run1")
    assert run.status == "running" and run.pid is not None
    store.log_event(run.id, {"kind": "step", "step": 1, "losses": {"kd": 0.5}})
    done = store.finish_run(run.id, "stopped", {"accuracy": 0.81})
    assert (done.status, done.metrics, done.artifact_dir) == ("stopped", {"accuracy": 0.81}, "/tmp/run1")
    assert [e["kind"] for e in store.run_events(run.id)] == ["started", "step", "stopped"]
    again = store.resume_run(run.id)
    assert (again.resumed_from, again.config, again.status) == (run.id, {"method": "kd", "cod": True}, "running")
    with pytest.raises(StoreError, match="still running"):
        store.resume_run(again.id)
    with pytest.raises(StoreError, match="not 'running'"):
        store.finish_run(again.id, "running")
    assert [r.id for r in store.runs("rt")] == [again.id, run.id]


def test_runs_of_dead_processes_are_interrupted_on_open(store, tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout
    mine = store.start_run("rt", {"method": "kd"})
    orphan = store.start_run("rt", {"method": "ce"})
    foreign = store.start_run(None, {"method": "lwd"})
    stale = store.start_run(None, {"method": "lwd"})
    raw = sqlite3.connect(tmp_path / "cod.db")
    raw.execute("UPDATE runs SET pid = ? WHERE id = ?", (int(dead), orphan.id))
    raw.execute("UPDATE runs SET host = 'elsewhere' WHERE id IN (?, ?)", (foreign.id, stale.id))
    raw.execute("UPDATE runs SET heartbeat_at = '2001-01-01T00:00:00+00:00' WHERE id = ?", (stale.id,))
    raw.commit()
    raw.close()
    with Store(tmp_path / "cod.db") as other:
        assert other.run(mine.id).status == "running"  # this process is alive
        assert other.run(orphan.id).status == "interrupted"
        assert other.run(foreign.id).status == "running"  # another host with a fresh heartbeat: left alone
        assert other.run(stale.id).status == "interrupted"
        assert other.run_events(orphan.id)[-1]["kind"] == "interrupted"


def test_sweeps(store):
    sweep = store.add_sweep("rt", {"k": [8, 16], "methods": ["kd", "kd+cod"]}, label="k sweep")
    store.add_sweep_results(
        sweep, [{"k": 8, "method": "kd", "accuracy": 0.7}, {"k": 8, "method": "kd+cod", "accuracy": 0.75}]
    )
    assert [r["accuracy"] for r in store.sweep_results(sweep)] == [0.7, 0.75]
    assert store.sweeps("rt")[0]["rows"] == 2 and store.sweeps("rt")[0]["label"] == "k sweep"


def _make_v1(path):
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_V1)
    rec = cf("a good film", "a bad film", 1).to_record(LABELS)
    conn.execute(
        "INSERT INTO projects VALUES (1, 'old', 'sst2', ?, 'demo', 'demo', 16, '2024-05-01T10:00:00+00:00')",
        (json.dumps(LABELS),),
    )
    conn.executemany(
        "INSERT INTO examples (project_id, text, label) VALUES (1, ?, ?)", [("a good film", 1), ("a bad film", 0)]
    )
    conn.execute(
        "INSERT INTO counterfactuals VALUES (1, 1, 1, ?, 'accepted', '2024-05-01T10:01:00+00:00')", (json.dumps(rec),)
    )
    conn.executemany(
        "INSERT INTO history (counterfactual_id, action, at) VALUES (1, ?, ?)",
        [("propose", "2024-05-01T10:01:00+00:00"), ("accept", "2024-05-01T10:02:00+00:00")],
    )
    events = json.dumps([{"kind": "step", "step": 1}, {"kind": "eval", "metrics": {"accuracy": 0.6}}])
    conn.execute(
        "INSERT INTO runs VALUES (1, 1, '{\"method\": \"kd\"}', 'running', NULL, ?, '2024-05-01T11:00:00+00:00')",
        (events,),
    )
    conn.commit()
    conn.close()


def test_migration_from_version_1_with_backup(tmp_path):
    db = tmp_path / "cod.db"
    _make_v1(db)
    with Store(db) as store:
        assert store.schema_version() == CURRENT_VERSION
        backup = store.backup_path
        assert backup is not None and backup.name.startswith("cod.db.v1-backup-")
        p = store.project("old")
        assert (p.task, p.label_names, p.seed, p.settings) == ("sst2", LABELS, 0, {})
        assert store.examples("old") == [Example("a good film", 1), Example("a bad film", 0)]
        (rec,) = store.counterfactuals("old")
        assert (rec.status, rec.text, rec.source, rec.example_id) == ("accepted", "a bad film", "lexical", 1)
        assert [(h.kind, h.source) for h in store.history(rec.id)] == [("propose", "lexical"), ("accept", "person")]
        assert not store.can_undo("old")  # version-1 lines have no before state
        run = store.run(1)
        assert run.status == "interrupted"  # it had no owner
        assert [e["kind"] for e in store.run_events(1)][:2] == ["step", "eval"]
        store.edit(rec.id, "a poor film")  # the migrated project is curated as usual
        assert store.undo("old").target_kind == "edit"
    old = sqlite3.connect(backup)
    assert old.execute("SELECT version FROM schema_version").fetchone()[0] == 1
    assert old.execute("SELECT status FROM runs").fetchone()[0] == "running"  # the backup is the untouched original
    old.close()
    with Store(db) as store:  # opening again migrates nothing and writes no second backup
        assert store.backup_path is None
    assert len(list(tmp_path.glob("cod.db.v1-backup-*"))) == 1


def test_bad_store_files(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable CoD store"):
        Store(junk)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE users (id INTEGER)").connection.commit()
    with pytest.raises(StoreError, match=r"not a CoD store \(tables \['users'\]\)"):
        Store(foreign)
    future = tmp_path / "future.db"
    conn = sqlite3.connect(future)
    conn.executescript("CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES (99);")
    conn.close()
    with pytest.raises(StoreError, match="version 99, newer"):
        Store(future)
    with pytest.raises(StoreError, match="is a folder"):
        Store(tmp_path)


def _snapshot(store: Store, name: str):
    p = store.project(name)
    pairs = []
    for r in store.counterfactuals(name):
        history = [(h.kind, h.source, h.before, h.after, h.at) for h in store.history(r.id)]
        pairs.append((r.status, r.text, r.probs, r.source, r.record, r.created_at, r.updated_at, history))
    return {k: v for k, v in p.meta().items() if k not in ("name", "data_source")}, pairs


@pytest.mark.parametrize("suffix", ["pairs.jsonl", "pairs.csv", "folder"])
def test_export_import_round_trip(store, tmp_path, suffix):
    from cod.store.transfer import pair_records

    ids = curated_project(store)
    store.edit(ids[2], 'NA, "quoted"\nline two — é')  # CSV quoting, a newline, a word pandas would read as missing
    store.add_examples("rt", [Example("an example without a pair", 0)])
    out = store.export("rt", tmp_path / "out" / suffix)
    imported = store.import_file(out, "copy")
    assert _snapshot(store, "copy") == _snapshot(store, "rt")
    original = pair_records(store, "rt")
    for line in original:
        line["project"]["name"] = "copy"
    assert pair_records(store, "copy") == original  # an export of the copy is the same export
    # A folder carries the whole example pool; a file carries the originals of its pairs.
    extra = [Example("an example without a pair", 0)] if suffix == "folder" else []
    assert store.examples("copy") == EXAMPLES + extra
    assert imported.data_source == "rt.csv"
    assert not store.can_undo("copy")  # the import itself is not an undoable curation step
    store.accept(store.counterfactuals("copy")[1].id)  # and the copy is curated as usual
    assert store.undo("copy").target_kind == "accept"


def test_export_curated_only_and_jsonl_shape(store, tmp_path):
    curated_project(store)
    out = store.export("rt", tmp_path / "c.jsonl", which="curated")
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["status"] for line in lines] == ["accepted", "edited", "accepted"]
    line = lines[1]
    assert (line["counterfactual"], line["proposed_counterfactual"], line["edited"]) == (
        "a truly fine film",
        "a fine film",
        True,
    )
    assert (
        line["counterfactual_teacher_probs"] == {"negative": 0.1, "positive": 0.9}
        and line["teacher_label"] == "positive"
    )
    assert line["project"]["label_names"] == LABELS and [h["kind"] for h in line["history"]] == ["propose", "edit"]
    assert line["example"] == {"split": "train", "position": 1, "text_pair": None}


def test_dataset_export(store, tmp_path):
    from datasets import load_from_disk

    curated_project(store)
    ds = load_from_disk(str(store.export("rt", tmp_path / "ds")))
    assert ds.num_rows == 4 and ds.features["label"].names == LABELS
    assert ds[1]["counterfactual"] == "a truly fine film" and ds[1]["counterfactual_teacher_probs"] == [0.1, 0.9]
    assert json.loads(ds[3]["history"])[-1]["kind"] == "accept"


def test_push_to_hub_offline_fails_clearly(store, monkeypatch):
    from cod.store.transfer import dataset_card, push_to_hub

    curated_project(store)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StoreError, match="HF_HUB_OFFLINE is set"):
        push_to_hub(store, "rt", "someone/rt-pairs")
    card = dataset_card(store, "rt", "someone/rt-pairs")
    assert "negative, positive" in card and "lexical, llm" in card


def test_import_plain_proposer_output(store, tmp_path):
    # Lines as `cod propose` writes them (Counterfactual.to_record, no status): they arrive as proposals.
    path = tmp_path / "proposed.jsonl"
    path.write_text(
        "\n".join(json.dumps(cf(e.text, e.text + " not", e.label).to_record(LABELS)) for e in EXAMPLES) + "\n"
    )
    p = store.import_file(path, "fresh")
    assert p.label_names == LABELS
    recs = store.counterfactuals("fresh")
    assert [r.status for r in recs] == ["proposed"] * 4 and recs[0].source == "lexical"
    assert store.examples("fresh") == EXAMPLES


BAD_FILES = {
    "binary.jsonl": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not UTF-8"),
    "text.jsonl": (b"hello world\n", "text.jsonl line 1 is not valid JSON"),
    "array.jsonl": (b"[1, 2]\n", "JSON list, not an object"),
    "foreign.jsonl": (b'{"user": "x", "score": 3}\n', r"has no \['text', 'label', 'counterfactual', 'target_label'\]"),
    "empty.jsonl": (b"\n\n", "holds no pairs"),
    "status.jsonl": (
        b'{"text": "a", "label": "negative", "counterfactual": "b", "target_label": "positive", "status": "maybe", '
        b'"teacher_probs": {"negative": 0.9, "positive": 0.1}}\n',
        "status 'maybe'",
    ),
    "label.jsonl": (
        b'{"text": "a", "label": "meh", "counterfactual": "b", "target_label": "positive", '
        b'"teacher_probs": {"negative": 0.9, "positive": 0.1}}\n',
        "Label 'meh' is not one of",
    ),
    "nolabels.jsonl": (
        b'{"text": "a", "label": 0, "counterfactual": "b", "target_label": 1}\n',
        "does not say its label names",
    ),
    "foreign.csv": (b"name,age\nbob,3\n", r"has no column\(s\) \['text', 'label', 'counterfactual', 'target_label'\]"),
    "badjson.csv": (
        b"text,label,counterfactual,target_label,history\na,negative,b,positive,{oops\n",
        "column 'history' is not valid JSON",
    ),
    "notes.txt": (b"hello", "neither .jsonl, .csv nor a folder"),
}


@pytest.mark.parametrize("filename", sorted(BAD_FILES))
def test_bad_import_files(store, tmp_path, filename):
    content, message = BAD_FILES[filename]
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        store.import_file(path, "new")
    assert [p.name for p in store.projects()] == ["rt"]  # nothing half-imported


def test_bad_import_targets(store, tmp_path):
    curated_project(store)
    out = store.export("rt", tmp_path / "e.jsonl")
    with pytest.raises(StoreError, match="'rt' already exists"):
        store.import_file(out, "rt")
    with pytest.raises(DataError, match="No file or folder"):
        store.import_file(tmp_path / "missing.jsonl", "x")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(DataError, match="not a CoD export"):
        store.import_file(tmp_path / "emptydir", "x")
    broken = json.loads(out.read_text().splitlines()[0])
    broken["history"] = [{"no": "kind"}]
    (tmp_path / "broken.jsonl").write_text(json.dumps(broken) + "\n")
    with pytest.raises(DataError, match="malformed history"):
        store.import_file(tmp_path / "broken.jsonl", "x")
    assert sorted(p.name for p in store.projects()) == ["rt"]


def test_cli_project_commands(cod_home, tmp_path, capsys, monkeypatch):
    from cod.cli import main

    monkeypatch.delenv("COD_DB", raising=False)
    data = tmp_path / "reviews.csv"
    data.write_text(
        "text,label\na good film,positive\na bad film,negative\ngreat fun,positive\na dull mess,negative\n"
    )
    assert main(["project", "create", "--name", "demo1", "--data", str(data), "--k", "4", "--seed", "1"]) == 0
    assert "4 examples" in capsys.readouterr().out
    with Store() as store:  # the CLI wrote to $COD_HOME/cod.db
        store.add_counterfactuals("demo1", [cf("a good film", "a bad film", 1)])
        store.accept(store.counterfactuals("demo1")[0].id)
    assert main(["project", "list"]) == 0
    assert "demo1" in capsys.readouterr().out
    assert main(["project", "show", "--name", "demo1"]) == 0
    shown = capsys.readouterr().out
    assert "k: 4   seed: 1" in shown and "1 accepted" in shown
    out = tmp_path / "demo1.jsonl"
    assert main(["project", "export", "--name", "demo1", "--out", str(out)]) == 0
    assert main(["project", "import", str(out), "--name", "demo2"]) == 0
    assert "1 accepted" in capsys.readouterr().out
    assert main(["project", "show", "--name", "demo2", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["k"], shown["seed"], shown["curated"]) == (4, 1, 1)
    assert main(["project", "import", str(data), "--name", "demo3"]) == 2
    assert "not a CoD pairs export" in capsys.readouterr().err
    assert main(["project", "show", "--name", "missing"]) == 2
