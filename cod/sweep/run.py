"""`sweep(config, ...)`: prepare what every cell shares once, hand the unfinished cells to a backend, and record each
cell as it finishes (cell.json, results.csv, summary.csv), so a stopped or killed sweep resumes where it left off."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cod.config import SweepConfig
from cod.counterfactuals.base import Counterfactual, read_counterfactuals, write_counterfactuals
from cod.errors import CodError
from cod.io import atomic_path, write_json
from cod.sweep.backends import Backend, LocalBackend
from cod.sweep.cells import CellOutcome, Draw, Shared, _stopped
from cod.sweep.grid import Cell, SweepEvent, cell_record, check_resumable, finished, grid_cells
from cod.sweep.tables import SweepResult, finish, write_tables

_NO_SETFIT = "setfit is not installed: `pip install setfit` to run this baseline; skipped."


def sweep(
    config: SweepConfig,
    teacher: Any = None,
    splits: Any = None,
    counterfactuals: Sequence[Counterfactual] | None = None,
    probes: Sequence[Counterfactual] | None = None,
    on_event: Callable[[SweepEvent], None] | None = None,
    stop: Any = None,
    backend: Backend | None = None,
) -> SweepResult:
    """Run (or resume) every cell of `config`, then write results.csv, summary.csv and the figures.

    `teacher` and `splits` default to `load_teacher(config.teacher)` and `load_task(config.task)`; `counterfactuals`
    is an optional pool (e.g. curated ones) used before the proposer for any original it covers; `probes` are
    held-out pairs for boundary fidelity (default: made from test examples by the proposer). `stop` is a callable
    or a threading.Event; a stopped sweep resumes where it left off. `backend` runs the cells: `LocalBackend()` (the
    default, one after another in this process) or `RayBackend(...)` (Ray tasks, on a cluster or this machine)."""
    from cod.eval.boundary import check_held_out

    backend = backend or LocalBackend()
    out = Path(config.out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    emit = on_event or (lambda event: None)
    check_resumable(config, out, backend.describe())
    if splits is None:
        from cod.data.tasks import load_task

        splits = load_task(config.task)
    if teacher is None:
        from cod.modeling.loading import load_teacher

        teacher = load_teacher(config.teacher, label_names=splits.label_names)
    names = list(splits.label_names)
    test = _subset(splits.test, config.test_limit)
    teacher_test = _teacher_test_probs(out, teacher, [e.text for e in test], len(names))
    teacher_accuracy = float((teacher_test.argmax(axis=1) == np.array([e.label for e in test])).mean())
    if probes is None:
        probes = _probes(config, out, names, test, splits.train, teacher, emit)
    probes = [p for p in probes if p.counterfactual and not p.error]
    check_held_out(probes, [e.text for e in splits.train])
    cells = grid_cells(config)
    total = len(cells)
    emit(SweepEvent("start", 0, total, metrics={"teacher_accuracy": teacher_accuracy}))
    done, todo = 0, []
    for cell in cells:
        if finished(out, cell):
            done += 1
            emit(SweepEvent("skip", done, total, cell=cell.name, metrics=cell_record(out, cell)["row"]))
        elif cell.method == "setfit" and importlib.util.find_spec("setfit") is None:
            done += 1
            emit(SweepEvent("warning", done, total, cell=cell.name, message=_NO_SETFIT))
        else:
            todo.append(cell)
    draws = _draws(
        config,
        out,
        todo,
        splits.train,
        names,
        teacher,
        {c.text: c for c in counterfactuals or [] if c.counterfactual},
        stop,
    )
    if draws is None:
        emit(SweepEvent("stopped", done, total, cell=todo[0].name if todo else ""))
        return finish(config, out, teacher_accuracy)
    validation = _validation(config, splits.validation)
    _score_once(teacher, validation, probes, draws, len(names))
    shared = Shared(config, teacher, names, validation, test, teacher_test, probes, draws)
    ran = set()
    for cell, outcome in backend.run(todo, shared, stop):
        if outcome is None:  # stopped inside the run: not a finished cell, it runs again on resume
            emit(SweepEvent("stopped", done, total, cell=cell.name))
            return finish(config, out, teacher_accuracy)
        _record(config, out, cell, outcome)
        ran.add(cell)
        done += 1
        for warning in outcome.warnings:
            emit(SweepEvent("warning", done, total, cell=cell.name, message=warning))
        ok = outcome.row["status"] == "done"
        emit(
            SweepEvent(
                "cell" if ok else "error",
                done,
                total,
                cell=cell.name,
                metrics=outcome.row,
                message=outcome.row.get("error", ""),
            )
        )
        write_tables(config, out, teacher_accuracy)
    if len(ran) < len(todo):  # the backend gave up on the rest because of `stop`
        emit(SweepEvent("stopped", done, total, cell=next(c.name for c in todo if c not in ran)))
        return finish(config, out, teacher_accuracy)
    result = finish(config, out, teacher_accuracy)
    emit(SweepEvent("done", done, total, metrics={"teacher_accuracy": teacher_accuracy}))
    return result


def _validation(config: SweepConfig, validation: Sequence) -> list:
    """The validation examples the cells select checkpoints on (every cell's `distill` reads the first max_validation),
    so only those are scored and shipped to the workers."""
    limit = config.distill_config("kd", config.ks[0], config.seeds[0]).max_validation
    return list(validation[:limit] if limit else validation)


def _record(config: SweepConfig, out: Path, cell: Cell, outcome: CellOutcome) -> None:
    """Write a finished cell's figures and cell.json (last: a cell.json means the cell is complete)."""
    for relative, data in outcome.files.items():
        with atomic_path(out / relative) as tmp:
            tmp.write_bytes(data)
    write_json(out / "cells" / cell.name / "cell.json", outcome.record(config), sort_keys=False)


def _subset(examples: Sequence, limit: int, seed: int = 0) -> list:
    if not limit or limit >= len(examples):
        return list(examples)
    idx = sorted(np.random.default_rng(seed).permutation(len(examples))[:limit])
    return [examples[i] for i in idx]


def _teacher_test_probs(out: Path, teacher: Any, texts: list[str], num_labels: int) -> np.ndarray:
    """The teacher's probabilities on the test texts, computed once per sweep folder (teacher_test.npz)."""
    from cod.eval.metrics import scorer_probs

    path = out / "teacher_test.npz"
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    if path.exists():
        saved = np.load(path)
        if str(saved["digest"]) == digest:
            scorer_probs(teacher, texts, num_labels)  # the cells' evaluation reads the teacher's cache
            return saved["probs"]
    probs = scorer_probs(teacher, texts, num_labels)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez adds no suffix
        np.savez(f, probs=probs, digest=np.array(digest))
    return probs


def _draws(config, out, cells, train, names, teacher, pool, stop) -> dict[str, Draw] | None:
    """Each (k, seed) draw the cells need, with its counterfactuals when a +cod cell needs them (made once per draw and
    cached in counterfactuals/); None when `stop` came first."""
    from cod.data.splits import cod_real_half, sample_few_shot

    draws: dict[str, Draw] = {}
    for cell in cells:
        draw = draws.get(cell.draw_key)
        if draw is None:
            if _stopped(stop):
                return None
            draw = draws[cell.draw_key] = Draw(sample_few_shot(train, cell.k, cell.seed, label_names=names))
        if cell.cod and not draw.counterfactuals:
            path = out / "counterfactuals" / f"{cell.draw_key}.jsonl"
            if path.exists():
                draw.counterfactuals = read_counterfactuals(path, names)
            else:
                draw.counterfactuals = _make_counterfactuals(config, cod_real_half(draw.examples), teacher, pool)
                write_counterfactuals(path, draw.counterfactuals, names)
        if cell.scheme not in ("", "cod") and cell.scheme not in draw.controls:
            path = out / "counterfactuals" / f"{cell.scheme}-{cell.draw_key}.jsonl"
            if path.exists():
                draw.controls[cell.scheme] = read_counterfactuals(path, names)
            else:
                draw.controls[cell.scheme] = _make_control(config, cell, draw, teacher, pool)
                write_counterfactuals(path, draw.controls[cell.scheme], names)
    return draws


COD_M_MAX = 4  # counterfactuals made per example for cod-m cells (a cod-mN cell trains on the first N)


def _make_control(config: SweepConfig, cell: Cell, draw: Draw, teacher: Any, pool: dict) -> list[Counterfactual]:
    """The edits of a control cell's draw, from its CoD counterfactuals: augment, random same-size edits of the same
    originals (`cod.counterfactuals.augment`); cod-m, flips of all k examples, up to COD_M_MAX each."""
    from cod.counterfactuals.augment import augment_edits, more_counterfactuals
    from cod.data.splits import cod_real_half

    if cell.scheme == "augment":
        return augment_edits(draw.counterfactuals, teacher, seed=cell.seed)
    rest = _make_counterfactuals(config, draw.examples[len(cod_real_half(draw.examples)) :], teacher, pool)
    return more_counterfactuals(draw.counterfactuals + rest, teacher, COD_M_MAX, seed=cell.seed)


def _score_once(
    teacher: Any, validation: list, probes: list[Counterfactual], draws: dict[str, Draw], num_labels: int
) -> None:
    """Score every text the cells will ask the teacher about (validation, probes, training examples, counterfactuals)
    now, so the teacher's cache holds them wherever the cells run."""
    from cod.eval.metrics import scorer_probs

    texts = [e.text for e in validation] + [t for p in probes for t in (p.text, p.counterfactual)]
    for draw in draws.values():
        edited = draw.counterfactuals + [c for cfs in draw.controls.values() for c in cfs]
        texts += [e.text for e in draw.examples] + [c.counterfactual for c in edited if c.counterfactual]
    scorer_probs(teacher, list(dict.fromkeys(texts)), num_labels)


def _make_counterfactuals(
    config: SweepConfig, real: Sequence, teacher: Any, pool: dict[str, Counterfactual]
) -> list[Counterfactual]:
    """Counterfactuals of the real half: from the given pool where present, the proposer for the rest."""
    have = [pool[e.text] for e in real if e.text in pool]
    missing = [e for e in real if e.text not in pool]
    if missing:
        from cod.counterfactuals import propose

        have += propose(missing, teacher, proposer=config.proposer, guide=_guide(config, teacher))
    return have


def _guide(config: SweepConfig, teacher: Any) -> Any:
    """The guide teacher the proposer searches against (None: the teacher itself); loaded once per process."""
    if not config.guide_teacher:
        return None
    from cod.modeling.loading import load_teacher

    return load_teacher(config.guide_teacher, label_names=teacher.label_names)


def _probes(
    config: SweepConfig, out: Path, names: list[str], test: Sequence, train: Sequence, teacher: Any, emit
) -> list[Counterfactual]:
    """The held-out probe pairs (from test examples, never training ones), made once and cached."""
    if not config.probe_pairs:
        return []
    from cod.eval.boundary import check_held_out, probe_pairs

    path = out / "probes.jsonl"
    if path.exists():
        pairs = read_counterfactuals(path, names)
    else:
        try:
            pairs = probe_pairs(
                test,
                teacher,
                n=config.probe_pairs,
                proposer=config.proposer,
                train_texts=[e.text for e in train],
                guide=_guide(config, teacher),
            )
        except (ImportError, CodError) as err:
            emit(SweepEvent("warning", 0, 0, message=f"No probe pairs, so no boundary fidelity: {err}"))
            return []
        write_counterfactuals(path, pairs, names)
    check_held_out(pairs, [e.text for e in train])
    return pairs
