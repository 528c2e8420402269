"""A separate process that writes to a store, for the crash and parallel-writer tests (tests/test_store_crash.py).

    python tests/store_worker.py curate DB PROJECT SEED      # curate forever, one JSON ack line after each commit
    python tests/store_worker.py write DB PROJECT WORKER N GO  # wait for file GO, then N propose/edit/accept rounds

An ack line is printed (and flushed) only after the store method returned, i.e. after its COMMIT.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cod.counterfactuals.base import Counterfactual  # noqa: E402
from cod.store.projects import Store  # noqa: E402

BATCH = 40


def _cf(text: str, new: str, label: int = 1) -> Counterfactual:
    return Counterfactual(
        text,
        label,
        [0.2, 0.8] if label else [0.8, 0.2],
        new,
        1 - label,
        [0.7, 0.3] if label else [0.3, 0.7],
        "lexical",
    )


def _ack(kind: str, rec) -> None:
    print(
        json.dumps({"op": kind, "cf": rec.id, "version": rec.version, "status": rec.status, "text": rec.text}),
        flush=True,
    )


def curate(db: str, project: str, seed: int) -> None:
    """Propose, accept, reject, edit and undo at random, with no pause, until killed."""
    rng = random.Random(seed)
    store = Store(db)
    run = store.start_run(project, {"method": "kd", "worker_seed": seed})
    print(json.dumps({"op": "run", "run": run.id}), flush=True)
    ids = [r.id for r in store.counterfactuals(project)]
    step = 0
    while True:
        step += 1
        roll = rng.random()
        if (
            step == 1 or roll < 0.04
        ):  # a batch of proposals is one transaction: after a kill it is all there or not at all
            batch = [
                _cf(f"batch {seed}-{step} item {j} was good", f"batch {seed}-{step} item {j} was bad")
                for j in range(BATCH)
            ]
            recs = store.add_counterfactuals(project, batch)
            ids += [r.id for r in recs]
            print(json.dumps({"op": "batch", "cfs": [r.id for r in recs]}), flush=True)
        elif not ids or roll < 0.25:
            rec = store.add_counterfactual(
                project, _cf(f"seed {seed} film {step} was good", f"seed {seed} film {step} was bad")
            )
            ids.append(rec.id)
            _ack("propose", rec)
        elif roll < 0.45:
            _ack("accept", store.accept(rng.choice(ids)))
        elif roll < 0.6:
            _ack("reject", store.reject(rng.choice(ids)))
        elif roll < 0.8:
            _ack("edit", store.edit(rng.choice(ids), f"edit {step} by seed {seed}"))
        elif roll < 0.9:
            action = store.undo(project)
            for cf_id in dict.fromkeys(action.counterfactual_ids if action else ()):
                _ack("undo", store.counterfactual(cf_id))
        else:
            store.log_event(run.id, {"kind": "step", "step": step})
            print(json.dumps({"op": "event", "run": run.id, "step": step}), flush=True)


def write(db: str, project: str, worker: int, n: int, go: str) -> None:
    """2n settings keys, then n rounds of propose + edit (+ accept every other) + a settings key, racing the others."""
    store = Store(db)
    Path(f"{go}.ready{worker}").touch()  # the parent starts everyone at once when all are ready
    while not Path(go).exists():
        time.sleep(0.005)
    for i in range(2 * n):  # a tight burst first, while every worker is at it: read-modify-write races show here
        store.update_settings(project, **{f"s{worker}_{i}": i})
    for i in range(n):
        rec = store.add_counterfactual(
            project, _cf(f"worker {worker} film {i} was good", f"worker {worker} film {i} was bad")
        )
        store.edit(rec.id, f"worker {worker} edit {i}")
        if i % 2 == 0:
            store.accept(rec.id)
        store.update_settings(project, **{f"w{worker}_{i}": i})
    print("done", flush=True)


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "curate":
        curate(rest[0], rest[1], int(rest[2]))
    else:
        write(rest[0], rest[1], int(rest[2]), int(rest[3]), rest[4])
