"""One cell of a sweep: `run_cell(cell, shared) -> CellOutcome`, the plain function every backend calls.

`Shared` holds what every cell of a sweep reads and nobody recomputes: the teacher (its score cache already holds
the validation, test, probe and training texts), the held-out splits, the teacher's test probabilities, the probe
pairs and each (k, seed) draw with its counterfactuals. A cell returns its results row and any figure files; the
caller writes them, so a cell can run on another machine than the sweep folder's.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cod.config import SweepConfig
from cod.counterfactuals.base import Counterfactual
from cod.errors import CodError
from cod.sweep.grid import Cell, baseline_of, settings_key

log = logging.getLogger(__name__)

_ROW_CONFIG = (
    "epochs",
    "max_steps",
    "learning_rate",
    "batch_size",
    "alpha",
    "temperature",
    "beta",
    "head",
    "ce_label",
    "ce_on_counterfactuals",
    "keep_unflipped",
    "warmup_ratio",
    "weight_decay",
    "max_length",
    "lora",
)
# Written once per sweep folder by the summary figures; every cell's figures would otherwise carry a copy.
_SHARED_FIGURE_FILES = {"plotly.min.js"}


@dataclass
class Draw:
    """One seeded few-shot draw of k training examples and the counterfactuals of its real half (cod); `controls`
    holds the other schemes' edits: augment (random same-size edits of the real half), cod-m (all k, up to 4 each)."""

    examples: list
    counterfactuals: list[Counterfactual] = field(default_factory=list)
    controls: dict[str, list[Counterfactual]] = field(default_factory=dict)

    def for_scheme(self, scheme: str) -> list[Counterfactual]:
        """The edited texts a cell of `scheme` trains on ('' : none)."""
        if not scheme:
            return []
        return self.counterfactuals if scheme == "cod" else self.controls.get(scheme, [])

    def real(self, scheme: str) -> list:
        """The real examples a cell of `scheme` trains on: the first k/2 for cod and augment, else all k."""
        from cod.data.splits import cod_real_half

        return cod_real_half(self.examples) if scheme in {"cod", "augment"} else list(self.examples)


@dataclass
class Shared:
    """What every cell of one sweep reads (made once, on the machine that runs the sweep)."""

    config: SweepConfig
    teacher: Any
    names: list[str]
    validation: list
    test: list
    teacher_test: np.ndarray  # (n_test, num_labels)
    probes: list[Counterfactual]
    draws: dict[str, Draw]  # by Cell.draw_key


@dataclass
class CellOutcome:
    """A cell's results row, its DistillConfig, figure files (path under the sweep folder -> bytes) and warnings."""

    row: dict[str, Any]
    distill_config: dict[str, Any] | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def record(self, config: SweepConfig) -> dict[str, Any]:
        """The cell.json payload."""
        return {"row": self.row, "distill_config": self.distill_config, "sweep": settings_key(config)}


def base_row(cell: Cell) -> dict[str, Any]:
    """The grid columns of a cell's row."""
    return {
        "method": cell.method,
        "baseline": baseline_of(cell.method),
        "k": cell.k,
        "seed": cell.seed,
        "cod": cell.cod,
    }


def failed_outcome(cell: Cell, error: str, wall_seconds: float = 0.0) -> CellOutcome:
    """The row of a cell that could not run (recorded so the other cells' tables still come out)."""
    return CellOutcome({**base_row(cell), "status": "error", "error": error, "wall_seconds": round(wall_seconds, 2)})


def run_cell(cell: Cell, shared: Shared, stop: Any = None) -> CellOutcome | None:
    """Train and evaluate one cell; None when `stop` ended the run (not a finished cell: it runs again on resume).

    A `CodError` (bad data, a model that cannot do this method) is a failed cell in the row; anything else propagates,
    so the backend can retry the cell."""
    from cod.distill.trainer import distill
    from cod.eval.metrics import StudentScorer, evaluate

    config, draw = shared.config, shared.draws[cell.draw_key]
    cfs = draw.for_scheme(cell.scheme)
    started = time.perf_counter()
    row = {**base_row(cell), "labels_used": cell.k}
    dc = None if cell.method == "setfit" else config.distill_config(cell.method, cell.k, cell.seed)
    outcome = CellOutcome(row, dc.to_dict() if dc else None)
    student = run = None
    try:
        if dc is None:
            student = _run_setfit(config.student, draw.examples, shared.names, cell.seed)
            row.update(train_examples=len(draw.examples), real_examples=len(draw.examples))
        else:
            row.update({key: getattr(dc, key) for key in _ROW_CONFIG})
            cod_pairs = cfs if cell.cod else None
            run = distill(
                dc,
                shared.teacher,
                config.student,
                draw.examples,
                cod_pairs,
                shared.validation,
                stop=stop,
                label_names=shared.names,
            )
            if _stopped(stop):
                return None
            row.update(_run_metrics(run.metrics))
            student = StudentScorer(run.model, run.tokenizer, max_length=dc.max_length, batch_size=dc.eval_batch_size)
        row.update(evaluate(shared.teacher, student, shared.test, shared.names, teacher_probs=shared.teacher_test))
        row["student_share_last"] = row.get(f"student_share_{shared.names[-1]}")
        row.update(_diagnostics(draw.real(cell.scheme), cell.cod, cfs, shared.teacher, len(shared.names)))
        if shared.probes:
            from cod.eval.boundary import boundary_fidelity

            row.update(boundary_fidelity(shared.probes, shared.teacher, student))
            if config.figures and cell.seed == config.seeds[0]:
                _add_figures(outcome, cell, shared, student)
        row.update(status="done")
    except CodError as err:
        log.warning("cell %s failed: %s", cell.name, err)
        row.update(status="error", error=str(err))
    finally:
        student = run = None  # free the model before the next cell
        gc.collect()
    row["wall_seconds"] = round(time.perf_counter() - started, 2)
    return outcome


def _stopped(stop: Any) -> bool:
    if stop is None:
        return False
    return bool(stop.is_set()) if hasattr(stop, "is_set") else bool(stop())


_GRID_COLUMNS = {"method", "k", "seed"}  # the sweep's names for a cell (a run calls kd+augment kd+cod: same loss)


def _run_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Counts and timings of a distill run for the results row (its test metrics are not used: we evaluate here)."""
    keep = {}
    for key, value in metrics.items():
        if "test" in key or not isinstance(value, int | float | str | bool) or value is None or key in _GRID_COLUMNS:
            continue
        keep["distill_seconds" if key == "wall_seconds" else key] = value
    return keep


def _diagnostics(real: list, cod: bool, cfs: list[Counterfactual], teacher: Any, num_labels: int) -> dict[str, float]:
    """What the student is trained on (`real`: the cell's real examples): teacher-vs-gold conflicts, the teacher's
    lean, the CE labels' balance, and the share of the edits that flip the teacher."""
    from cod.eval.metrics import scorer_probs

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


def _run_setfit(student: str, draw: list, label_names: list[str], seed: int) -> Any:
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
    with tempfile.TemporaryDirectory(
        prefix="cod-setfit-"
    ) as tmp:  # SetFit's defaults, but no ./checkpoints left behind
        args = TrainingArguments(seed=seed, num_epochs=1, output_dir=tmp, save_strategy="no", report_to="none")
        Trainer(model=model, args=args, train_dataset=train).train()
    return as_scorer(lambda texts: np.asarray(model.predict_proba(texts, as_numpy=True), dtype=float))


def _add_figures(outcome: CellOutcome, cell: Cell, shared: Shared, student: Any) -> None:
    """Boundary view and edit paths of one cell, as files for figures/; a figure that cannot be drawn (no
    embeddings) is a warning, not a failed cell."""
    with tempfile.TemporaryDirectory(prefix="cod-figures-") as tmp:
        try:
            _cell_figures(Path(tmp), cell.name, shared, student)
        except CodError as err:
            outcome.warnings.append(f"no boundary view: {err}")
        for path in Path(tmp).iterdir():
            if path.is_file() and path.name not in _SHARED_FIGURE_FILES:
                outcome.files[f"figures/{path.name}"] = path.read_bytes()


def _cell_figures(folder: Path, name: str, shared: Shared, student: Any) -> None:
    from cod.eval.boundary import boundary_points, edit_path_table
    from cod.eval.plots import boundary_view, edit_path_plot, save_figure

    probes, teacher = shared.probes, shared.teacher
    table = edit_path_table(probes, teacher, student)
    save_figure(
        edit_path_plot(table, title=f"Edit paths: {name}"), folder, f"edit_paths-{name}", include_plotlyjs="directory"
    )
    if not hasattr(teacher, "embed"):
        return
    points = boundary_points(probes, teacher, student, embed=teacher.embed, label_names=shared.names)
    save_figure(
        boundary_view(points, title=f"Boundary view: {name}"), folder, f"boundary-{name}", include_plotlyjs="directory"
    )
