"""Budget-matched sweeps: every method x k x seed on one task, resumable, summarised with paired statistics.

For each (k, seed) one seeded, class-balanced draw of k training examples is made; a baseline cell (kd, lwd, ce)
trains on all k, a `+cod` cell on the draw's first k/2 and their k/2 counterfactuals (made once per draw, cached).
Model selection uses the validation split inside `distill`; the test split is only evaluated, here, once per cell.

Folder layout (`config.out`):
    sweep.json                    the settings; a resumed sweep must use the same ones
    cells/<cell>/cell.json        one finished (or failed) cell: config, metrics, timings
    counterfactuals/k8-s0.jsonl   counterfactuals of each draw's real half (reused by every +cod cell of that draw)
    probes.jsonl                  held-out probe pairs (from test examples) for boundary fidelity
    teacher_test.npz              teacher probabilities on the test examples (computed once)
    results.csv, summary.csv      one row per cell; per method and k with intervals and paired differences
    figures/                      accuracy_vs_k, cod_gain, and per-cell boundary views / edit paths (HTML + JSON)
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cod.config import SweepConfig
from cod.counterfactuals.base import Counterfactual, read_counterfactuals, write_counterfactuals
from cod.csvsafe import write_csv
from cod.errors import CodError, ConfigError
from cod.eval.stats import paired_difference, summarise
from cod.io import atomic_path, write_json

log = logging.getLogger(__name__)

# Settings that may change between a sweep and its resumption (they only add or drop cells or figures).
_GRID_KEYS = {"ks", "seeds", "methods", "out", "figures"}
_ROW_CONFIG = (
    "epochs", "max_steps", "learning_rate", "batch_size", "alpha", "temperature", "beta", "head", "ce_label",
    "ce_on_counterfactuals", "keep_unflipped", "warmup_ratio", "weight_decay", "max_length", "lora",
)  # fmt: skip
# Per-cell metrics averaged into summary.csv beside the main metric.
_SECONDARY = (
    "student_macro_f1", "agreement", "mean_kl", "student_ece", "flip_fidelity", "edit_path_distance",
    "train_examples", "cf_flip_rate", "train_teacher_gold_conflict", "train_teacher_mean_p_last",
    "student_share_last", "wall_seconds",
)  # fmt: skip


@dataclass
class SweepEvent:
    """Progress of a sweep: kind is start | cell | skip | error | warning | done | stopped."""

    kind: str
    done: int
    total: int
    cell: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass
class SweepResult:
    """The tables a sweep wrote, and where."""

    results: pd.DataFrame
    summary: pd.DataFrame
    out_dir: Path
    teacher_accuracy: float | None = None


def baseline_of(method: str) -> str | None:
    """The budget-matched baseline of a method: `kd+cod` -> `kd`; baselines themselves have none."""
    return method.split("+")[0] if method.endswith("+cod") else None


def cell_name(method: str, k: int, seed: int) -> str:
    """Folder name of one cell, e.g. `kd_cod-k8-s0`."""
    return f"{method.replace('+', '_')}-k{k}-s{seed}"


def settings_key(config: SweepConfig) -> dict[str, Any]:
    """The settings every cell of a sweep must share (everything but the grid itself)."""
    return {key: value for key, value in config.to_dict().items() if key not in _GRID_KEYS}


# ----------------------------------------------------------------------------- summary


def summarise_results(
    results: pd.DataFrame, metric: str = "student_accuracy", confidence: float = 0.95, methods: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per method and k: n_seeds, mean, std, bootstrap interval of `metric`; for `+cod` methods the paired difference
    against the baseline over common seeds, its interval and the seeds won; and means of secondary metrics."""
    done = results[results.get("status", pd.Series("done", index=results.index)) == "done"] if len(results) else results
    if not len(done):
        return pd.DataFrame(columns=["method", "baseline", "k", "n_seeds", "mean", "std", "ci_low", "ci_high",
                                     "paired_diff", "paired_ci_low", "paired_ci_high", "seeds_won", "n_paired"])  # fmt: skip
    order = list(methods) if methods else list(dict.fromkeys(done["method"]))
    order += [m for m in dict.fromkeys(done["method"]) if m not in order]
    rows = []
    for method in order:
        for k in sorted(done.loc[done.method == method, "k"].unique()):
            cell = done[(done.method == method) & (done.k == k)]
            values = dict(zip(cell.seed.astype(int), cell[metric].astype(float)))
            row: dict[str, Any] = {"method": method, "baseline": baseline_of(method), "k": int(k), "metric": metric}
            row.update(summarise(list(values.values()), confidence=confidence).to_dict())
            base = baseline_of(method)
            base_cell = done[(done.method == base) & (done.k == k)] if base else done.iloc[0:0]
            if len(base_cell):
                paired = paired_difference(values, dict(zip(base_cell.seed.astype(int), base_cell[metric].astype(float))), confidence)
                row.update({key: value for key, value in paired.to_dict().items() if key != "seeds_tied"})
            else:
                row.update(paired_diff=np.nan, paired_ci_low=np.nan, paired_ci_high=np.nan, seeds_won=np.nan,
                           seeds_lost=np.nan, n_paired=np.nan)  # fmt: skip
            if "teacher_accuracy" in cell:
                row["teacher_accuracy"] = float(cell.teacher_accuracy.mean())
            for name in _SECONDARY:
                if name in cell and pd.api.types.is_numeric_dtype(cell[name]):
                    row[f"mean_{name}"] = float(cell[name].mean())
            rows.append(row)
    return pd.DataFrame(rows)


def load_results(out: str | Path) -> pd.DataFrame:
    """One row per cell folder under `out/cells` (finished or failed), in grid order."""
    rows = []
    for path in sorted(Path(out).glob("cells/*/cell.json")):
        rows.append(json.loads(path.read_text())["row"])
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the sweep


class _Cache:
    """The sweep folder's caches: counterfactuals per draw, probe pairs, teacher test probabilities."""

    def __init__(self, out: Path, label_names: Sequence[str]):
        self.out = out
        self.label_names = list(label_names)

    def counterfactuals(self, key: str) -> list[Counterfactual] | None:
        path = self.out / "counterfactuals" / f"{key}.jsonl"
        if not path.exists():
            return None
        return read_counterfactuals(path, self.label_names)

    def save_counterfactuals(self, key: str, cfs: Sequence[Counterfactual]) -> None:
        path = self.out / "counterfactuals" / f"{key}.jsonl"
        write_counterfactuals(path, cfs, self.label_names)

    def teacher_probs(self, teacher: Any, texts: Sequence[str]) -> np.ndarray:
        from cod.eval.metrics import scorer_probs

        path = self.out / "teacher_test.npz"
        digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
        if path.exists():
            saved = np.load(path)
            if str(saved["digest"]) == digest:
                return saved["probs"]
        probs = scorer_probs(teacher, texts, len(self.label_names))
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez adds no suffix
            np.savez(f, probs=probs, digest=np.array(digest))
        return probs


def _subset(examples: Sequence, limit: int, seed: int = 0) -> list:
    if not limit or limit >= len(examples):
        return list(examples)
    idx = sorted(np.random.default_rng(seed).permutation(len(examples))[:limit])
    return [examples[i] for i in idx]


def _make_counterfactuals(config: SweepConfig, real: Sequence, teacher: Any, pool: dict[str, Counterfactual]) -> list[Counterfactual]:
    """Counterfactuals of the real half: from the given pool where present, the proposer for the rest."""
    have = [pool[e.text] for e in real if e.text in pool]
    missing = [e for e in real if e.text not in pool]
    if missing:
        from cod.counterfactuals import propose

        have += propose(missing, teacher, proposer=config.proposer)
    return have


def _diagnostics(draw: Sequence, cod: bool, cfs: Sequence[Counterfactual], teacher: Any, num_labels: int) -> dict[str, float]:
    """What the student is trained on: teacher-vs-gold conflicts, the teacher's lean, the CE labels' balance."""
    from cod.data.splits import cod_real_half
    from cod.eval.metrics import scorer_probs

    real = cod_real_half(draw) if cod else list(draw)
    real_texts = {e.text for e in real}
    used = {}
    for c in cfs if cod else []:
        if c.text in real_texts and c.text not in used and c.flipped and c.counterfactual:
            used[c.text] = c
    texts = [e.text for e in real] + [c.counterfactual for c in used.values()]
    probs = scorer_probs(teacher, texts, num_labels)  # (n_train, L), from the teacher's cache
    gold = np.array([e.label for e in real])
    ce_labels = np.concatenate([gold, probs[len(real) :].argmax(axis=1)]).astype(int)
    relevant = [c for c in cfs if c.text in real_texts] if cod else []
    return {
        "train_teacher_gold_conflict": float((probs[: len(real)].argmax(axis=1) != gold).mean()),
        "train_teacher_mean_p_last": float(probs[:, -1].mean()),
        "train_label_share_last": float((ce_labels == num_labels - 1).mean()),
        "cf_flip_rate": float(np.mean([c.flipped for c in relevant])) if relevant else np.nan,
    }


def _run_setfit(student: str, draw: Sequence, test: Sequence, label_names: Sequence[str], seed: int) -> Any:
    """Plain few-shot SetFit fine-tuning of the student's sentence encoder on the k real examples (no teacher)."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from cod.eval.metrics import as_scorer

    path = student
    if student == "demo":
        from cod.modeling.demo.build import demo_student_path

        path = str(demo_student_path())
    model = SetFitModel.from_pretrained(path, labels=list(label_names))
    train = Dataset.from_dict({"text": [e.text for e in draw], "label": [e.label for e in draw]})
    with tempfile.TemporaryDirectory(prefix="cod-setfit-") as tmp:  # SetFit's defaults, but no ./checkpoints left behind
        args = TrainingArguments(seed=seed, num_epochs=1, output_dir=tmp, save_strategy="no", report_to="none")
        Trainer(model=model, args=args, train_dataset=train).train()
    return as_scorer(lambda texts: np.asarray(model.predict_proba(texts, as_numpy=True), dtype=float))


@dataclass
class _Context:
    """What every cell of one sweep shares."""

    config: SweepConfig
    out: Path
    teacher: Any
    names: list[str]
    validation: list
    test: list
    teacher_test: np.ndarray  # (n_test, L)
    probes: list[Counterfactual]
    emit: Callable[[SweepEvent], None]
    stop: Any
    total: int
    embed_memo: dict[str, np.ndarray] = field(default_factory=dict)


def sweep(
    config: SweepConfig,
    teacher: Any = None,
    splits: Any = None,
    counterfactuals: Sequence[Counterfactual] | None = None,
    probes: Sequence[Counterfactual] | None = None,
    on_event: Callable[[SweepEvent], None] | None = None,
    stop: Any = None,
) -> SweepResult:
    """Run (or resume) every cell of `config`, then write results.csv, summary.csv and the figures.

    `teacher` and `splits` default to `load_teacher(config.teacher)` and `load_task(config.task)`; `counterfactuals`
    is an optional pool (e.g. curated ones) used before the proposer for any original it covers; `probes` are
    held-out pairs for boundary fidelity (default: made from test examples by the proposer). `stop` is a callable
    or a threading.Event; a stopped sweep resumes where it left off."""
    from cod.eval.boundary import check_held_out
    from cod.data.splits import cod_real_half, sample_few_shot

    out = Path(config.out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    emit = on_event or (lambda event: None)
    _check_resumable(config, out)
    if splits is None:
        from cod.data.tasks import load_task

        splits = load_task(config.task)
    if teacher is None:
        from cod.modeling.loading import load_teacher

        teacher = load_teacher(config.teacher, label_names=splits.label_names)
    names = list(splits.label_names)
    cache = _Cache(out, names)
    test = _subset(splits.test, config.test_limit)
    teacher_test = cache.teacher_probs(teacher, [e.text for e in test])
    teacher_accuracy = float((teacher_test.argmax(axis=1) == np.array([e.label for e in test])).mean())
    if probes is None:
        probes = _probes(config, out, cache, test, splits.train, teacher, emit)
    probes = [p for p in probes if p.counterfactual and not p.error]
    check_held_out(probes, [e.text for e in splits.train])
    pool = {c.text: c for c in counterfactuals or [] if c.counterfactual}
    total = len(config.ks) * len(config.seeds) * len(config.methods)
    ctx = _Context(config, out, teacher, names, list(splits.validation), test, teacher_test, probes, emit, stop, total)
    emit(SweepEvent("start", 0, total, metrics={"teacher_accuracy": teacher_accuracy}))
    done = 0
    for k in config.ks:
        for seed in config.seeds:
            draw = sample_few_shot(splits.train, k, seed, label_names=names)
            cfs: list[Counterfactual] | None = None  # made (or read) on the draw's first +cod cell
            for method in config.methods:
                name = cell_name(method, k, seed)
                if _finished(out / "cells" / name):
                    done += 1
                    emit(SweepEvent("skip", done, total, cell=name))
                    continue
                if _stopped(stop):
                    emit(SweepEvent("stopped", done, total, cell=name))
                    return _finish(config, out, teacher_accuracy)
                if method == "setfit" and importlib.util.find_spec("setfit") is None:
                    done += 1
                    emit(SweepEvent("warning", done, total, cell=name, message="setfit is not installed: `pip install setfit` to run this baseline; skipped."))
                    continue
                if method.endswith("+cod") and cfs is None:
                    cfs = cache.counterfactuals(f"k{k}-s{seed}")
                    if cfs is None:
                        cfs = _make_counterfactuals(config, cod_real_half(draw), teacher, pool)
                        cache.save_counterfactuals(f"k{k}-s{seed}", cfs)
                row = _run_cell(ctx, method, k, seed, draw, cfs or [], done)
                if row is None:  # stopped inside the run: not a finished cell, it runs again on resume
                    emit(SweepEvent("stopped", done, total, cell=name))
                    return _finish(config, out, teacher_accuracy)
                done += 1
                emit(SweepEvent("cell" if row["status"] == "done" else "error", done, total, cell=name, metrics=row, message=row.get("error", "")))
            _write_tables(config, out, teacher_accuracy)
    finished = _finish(config, out, teacher_accuracy)
    emit(SweepEvent("done", done, total, metrics={"teacher_accuracy": teacher_accuracy}))
    return finished


def _run_cell(ctx: _Context, method: str, k: int, seed: int, draw: list, cfs: list[Counterfactual], done: int) -> dict | None:
    """Train and evaluate one cell and write its cell.json; None when the run was stopped."""
    from cod.distill.trainer import distill
    from cod.eval.metrics import StudentScorer, evaluate

    config, name, is_cod = ctx.config, cell_name(method, k, seed), method.endswith("+cod")
    started = time.perf_counter()
    row: dict[str, Any] = {"method": method, "baseline": baseline_of(method), "k": k, "seed": seed, "cod": is_cod}
    dc = None if method == "setfit" else config.distill_config(method, k, seed)
    try:
        if dc is None:
            student = _run_setfit(config.student, draw, ctx.test, ctx.names, seed)
            row.update(train_examples=len(draw), real_examples=len(draw))
        else:
            row.update({key: getattr(dc, key) for key in _ROW_CONFIG})
            run = distill(dc, ctx.teacher, config.student, draw, cfs if is_cod else None, ctx.validation, stop=ctx.stop, label_names=ctx.names)
            if _stopped(ctx.stop):
                return None
            row.update(_run_metrics(run.metrics))
            student = StudentScorer(run.model, run.tokenizer, max_length=dc.max_length, batch_size=dc.eval_batch_size)
        row.update(evaluate(ctx.teacher, student, ctx.test, ctx.names, teacher_probs=ctx.teacher_test))
        row["student_share_last"] = row.get(f"student_share_{ctx.names[-1]}")
        row.update(_diagnostics(draw, is_cod, cfs, ctx.teacher, len(ctx.names)))
        if ctx.probes:
            from cod.eval.boundary import boundary_fidelity

            row.update(boundary_fidelity(ctx.probes, ctx.teacher, student))
            if config.figures and seed == config.seeds[0]:
                try:  # a figure that cannot be drawn (no embeddings) does not fail the cell
                    _cell_figures(ctx.out, name, ctx.probes, ctx.teacher, student, ctx.names, ctx.embed_memo)
                except CodError as err:
                    ctx.emit(SweepEvent("warning", done, ctx.total, cell=name, message=f"no boundary view: {err}"))
        row.update(status="done")
    except CodError as err:
        log.warning("cell %s failed: %s", name, err)
        row.update(status="error", error=str(err))
    finally:
        student = run = None  # free the model before the next cell
        gc.collect()
    row["wall_seconds"] = round(time.perf_counter() - started, 2)
    cell_dir = ctx.out / "cells" / name
    cell_dir.mkdir(parents=True, exist_ok=True)
    payload = {"row": row, "distill_config": dc.to_dict() if dc else None, "sweep": settings_key(config)}
    write_json(cell_dir / "cell.json", payload, sort_keys=False)
    return row


def _stopped(stop: Any) -> bool:
    if stop is None:
        return False
    return bool(stop.is_set()) if hasattr(stop, "is_set") else bool(stop())


def _finished(cell_dir: Path) -> bool:
    path = cell_dir / "cell.json"
    return path.exists() and json.loads(path.read_text())["row"].get("status") == "done"


def _check_resumable(config: SweepConfig, out: Path) -> None:
    path = out / "sweep.json"
    mine = settings_key(config)
    if path.exists():
        theirs = json.loads(path.read_text()).get("settings", {})
        changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if changed:
            raise ConfigError(
                f"{out} holds a sweep made with other settings ({', '.join(f'{k}: {theirs.get(k)!r} -> {mine.get(k)!r}' for k in changed)}): "
                "use a new --out folder, or the same settings to resume it."
            )
    write_json(path, {"settings": mine, "grid": _grid(config, out)}, sort_keys=False)


def _grid(config: SweepConfig, out: Path) -> dict[str, list]:
    """Every k, seed and method run in this folder so far (earlier invocations first, then this one's new values):
    adding a method or a seed to a finished sweep keeps the finished cells in its tables."""
    path = out / "sweep.json"
    before = json.loads(path.read_text()).get("grid", {}) if path.exists() else {}
    grid = {}
    for key in ("ks", "seeds", "methods"):
        values = list(before.get(key, []))
        values += [v for v in getattr(config, key) if v not in values]
        grid[key] = sorted(values) if key != "methods" else values
    return grid


def _run_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Counts and timings of a distill run for the results row (its test metrics are not used: we evaluate here)."""
    keep = {}
    for key, value in metrics.items():
        if "test" in key or not isinstance(value, (int, float, str, bool)) or value is None:
            continue
        keep["distill_seconds" if key == "wall_seconds" else key] = value
    return keep


def _probes(config: SweepConfig, out: Path, cache: _Cache, test: Sequence, train: Sequence, teacher: Any, emit) -> list[Counterfactual]:
    """The held-out probe pairs (from test examples, never training ones), made once and cached."""
    if not config.probe_pairs:
        return []
    from cod.eval.boundary import check_held_out, probe_pairs

    path = out / "probes.jsonl"
    if path.exists():
        pairs = read_counterfactuals(path, cache.label_names)
    else:
        try:
            pairs = probe_pairs(test, teacher, n=config.probe_pairs, proposer=config.proposer, train_texts=[e.text for e in train])
        except (ImportError, CodError) as err:
            emit(SweepEvent("warning", 0, 0, message=f"No probe pairs, so no boundary fidelity: {err}"))
            return []
        write_counterfactuals(path, pairs, cache.label_names)
    check_held_out(pairs, [e.text for e in train])
    return pairs


def _cell_figures(out: Path, name: str, probes, teacher, student, names, memo: dict[str, np.ndarray]) -> None:
    """Boundary view and edit paths of one cell (the teacher's embeddings of the probes are computed once)."""
    from cod.eval.boundary import boundary_points, edit_path_table
    from cod.eval.plots import boundary_view, edit_path_plot, save_figure

    figures = out / "figures"
    save_figure(edit_path_plot(edit_path_table(probes, teacher, student), title=f"Edit paths: {name}"), figures, f"edit_paths-{name}", include_plotlyjs="directory")
    if not hasattr(teacher, "embed"):
        return

    def embed(texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in memo]
        if missing:
            memo.update(zip(missing, np.asarray(teacher.embed(missing))))
        return np.stack([memo[t] for t in texts])

    points = boundary_points(probes, teacher, student, embed=embed, label_names=names)
    save_figure(boundary_view(points, title=f"Boundary view: {name}"), figures, f"boundary-{name}", include_plotlyjs="directory")


def _write_tables(config: SweepConfig, out: Path, teacher_accuracy: float | None, figures: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    results = load_results(out)
    grid = _grid(config, out)
    if len(results):
        cells = {(m, k, s) for m in grid["methods"] for k in grid["ks"] for s in grid["seeds"]}
        results = results[[(m, k, s) in cells for m, k, s in zip(results.method, results.k, results.seed)]]
        rank = {m: i for i, m in enumerate(grid["methods"])}
        results = results.sort_values(["k", "seed"], kind="stable").sort_values("method", key=lambda s: s.map(rank), kind="stable")
    summary = summarise_results(results, confidence=config.confidence, methods=grid["methods"])
    write_csv(results, out / "results.csv")  # formula-safe: cells can hold model names and error messages
    write_csv(summary, out / "summary.csv")
    if figures and config.figures and len(summary):
        from cod.eval.plots import accuracy_vs_k, cod_gain_vs_k, save_figure

        save_figure(accuracy_vs_k(summary, teacher_accuracy), out / "figures", "accuracy_vs_k", include_plotlyjs="directory")
        if summary.paired_diff.notna().any():
            save_figure(cod_gain_vs_k(summary), out / "figures", "cod_gain", include_plotlyjs="directory")
    return results, summary


def _finish(config: SweepConfig, out: Path, teacher_accuracy: float | None) -> SweepResult:
    results, summary = _write_tables(config, out, teacher_accuracy, figures=True)
    return SweepResult(results=results, summary=summary, out_dir=out, teacher_accuracy=teacher_accuracy)
