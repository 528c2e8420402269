"""The store under real processes: a curator killed by SIGKILL mid-way loses nothing it acknowledged, and parallel
writers on one project lose no write. Workers run tests/store_worker.py."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cod.store.projects import Store
from tests.store_worker import BATCH

WORKER = Path(__file__).with_name("store_worker.py")


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _kill_after(proc: subprocess.Popen, acks_wanted: int) -> list[dict]:
    """Read ack lines until `acks_wanted`, SIGKILL the child at once, then collect every complete line it got out."""
    lines = []
    deadline = time.monotonic() + 30
    while len(lines) < acks_wanted and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the curator exited early: {proc.stderr.read()}")
        lines.append(line)
    proc.send_signal(signal.SIGKILL)
    rest = proc.stdout.read()  # lines printed after the ones read were acknowledged too
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    lines += rest.splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n")]


def test_sigkill_mid_curation_loses_no_acknowledged_action(tmp_path):
    db = tmp_path / "cod.db"
    with Store(db) as store:
        store.create_project("crash", ["negative", "positive"])
    acks: list[dict] = []
    runs = []
    for round_, wanted in enumerate(
        (25, 60, 41)
    ):  # three kills at different points, each child carries on the last's work
        got = _kill_after(_spawn("curate", str(db), "crash", str(round_)), wanted)
        assert len(got) >= wanted
        runs.append(got[0]["run"])
        acks += got[1:]

    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    with Store(db) as store:
        by_id = {r.id: r for r in store.counterfactuals("crash")}
        batches: dict[str, int] = {}
        for rec in by_id.values():
            if rec.proposed_text.startswith("batch "):
                batches[rec.proposed_text.split()[1]] = batches.get(rec.proposed_text.split()[1], 0) + 1
        assert set(batches.values()) <= {BATCH}  # no batch half-written
        for ack in acks:
            if ack["op"] == "batch":
                assert all(cf_id in by_id for cf_id in ack["cfs"])
            if ack["op"] in ("event", "batch"):
                continue
            rec = by_id[ack["cf"]]  # KeyError: an acknowledged proposal is missing
            history = store.history(ack["cf"])
            assert rec.version >= ack["version"]
            assert history[ack["version"] - 1].after["status"] == ack["status"], ack
            assert history[ack["version"] - 1].after["text"] == ack["text"], ack
        for rec in by_id.values():  # the row and its history agree: no half-written action
            history = store.history(rec.id)
            assert len(history) == rec.version
            assert (history[-1].after["status"], history[-1].after["text"]) == (rec.status, rec.text)
        events = [a for a in acks if a["op"] == "event"]
        for run_id in runs:
            run = store.run(run_id)
            assert run.status == "interrupted"  # the killed owners are gone: marked on open
            assert "cut off" in run.error
            logged = {e["step"] for e in store.run_events(run_id) if e["kind"] == "step"}
            assert {e["step"] for e in events if e["run"] == run_id} <= logged
        kinds = {a["op"] for a in acks}
        assert {"propose", "accept", "reject", "edit", "undo", "batch"} <= kinds  # every kind of action was exercised


def test_parallel_writers_lose_no_write(tmp_path):
    db = tmp_path / "cod.db"
    go = tmp_path / "go"
    with Store(db) as store:
        store.create_project("shared", ["negative", "positive"])
    workers, n = 4, 15
    procs = [_spawn("write", str(db), "shared", str(w), str(n), str(go)) for w in range(workers)]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"go.ready{w}").exists() for w in range(workers)) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # all start writing at once
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert out.strip() == "done"

    with Store(db) as store:
        recs = store.counterfactuals("shared")
        assert len(recs) == workers * n
        texts = {r.text for r in recs}
        assert texts == {f"worker {w} edit {i}" for w in range(workers) for i in range(n)}
        for r in recs:
            i = int(r.proposed_text.split()[3])  # "worker W film I was bad"
            assert r.status == ("accepted" if i % 2 == 0 else "edited")
            assert [h.kind for h in store.history(r.id)] == ["propose", "edit"] + (["accept"] if i % 2 == 0 else [])
        settings = store.project("shared").settings
        expected = {f"w{w}_{i}": i for w in range(workers) for i in range(n)}
        expected.update({f"s{w}_{i}": i for w in range(workers) for i in range(2 * n)})
        assert settings == expected  # each update merged into the latest settings, none overwritten
        assert len(store.actions("shared")) == workers * (2 * n + (n + 1) // 2)


def test_live_run_of_another_process_is_not_marked_interrupted(tmp_path):
    db = tmp_path / "cod.db"
    with Store(db) as store:
        store.create_project("p", ["a", "b"])
    proc = _spawn("curate", str(db), "p", "7")
    try:
        run_id = json.loads(proc.stdout.readline())["run"]
        with Store(db) as other:  # opening runs the recovery: the owner is alive
            assert other.run(run_id).status == "running"
    finally:
        proc.kill()
        proc.wait()
    with Store(db) as again:
        assert again.run(run_id).status == "interrupted"


def test_threads_sharing_one_store(tmp_path):
    import threading

    store = Store(tmp_path / "cod.db")
    store.create_project("t", ["a", "b"])
    from tests.store_worker import _cf

    def work(k: int) -> None:
        for i in range(10):
            rec = store.add_counterfactual("t", _cf(f"thread {k} text {i}", f"thread {k} new {i}"))
            store.accept(rec.id)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.counterfactuals("t", "accepted")) == 40
    store.close()
