"""The life of an experiment: source data -> splits -> proposals -> curation -> training set -> distillation -> record.

The app's tabs, the command line and sweeps all go through these functions, so they cannot disagree on which
examples train, which choose the checkpoint, which counterfactual of an example trains, or what a project holds.

    source = open_source("reviews.csv")                      # or a built-in task: open_source("demo")
    splits = split(source, k=16, seed=0)                     # the draw; held-out data that never holds a drawn example
    project = save_project(store, "rt", source, splits)      # what the app opens and the CLI lists
    cfs = training_counterfactuals(store, "rt")              # the user's edit, else the accepted proposal
    result = run_distillation(config, teacher, student, splits, cfs, out_dir=...)

Held-out data is optional and explicit. With a labelled validation set (a task's split or a file) the checkpoint is
chosen on it; with only unlabelled texts, on agreement with the teacher; with neither, training runs its fixed
schedule and keeps the last step. A file larger than the draw gives, by default, its rows that were not drawn as
validation (`held_out="auto"`), and `Splits.lines()` says how many rows that took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cod.data.readers import Example, LabelledData, LoadReport
from cod.data.splits import HELD_OUT_MAX, cod_real_half, held_out, sample_few_shot, without_drawn
from cod.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from cod.config import DataConfig
    from cod.counterfactuals.base import Counterfactual
    from cod.store import Project, Store

# Split names of a project's examples in the store (the `examples.split` column).
FEW_SHOT, VALIDATION, POOL, TEST = "fewshot", "validation", "train", "test"
# How the checkpoint is chosen (metrics.json `selection`), from what the splits hold.
SELECTIONS = ("validation", "teacher_agreement", "last_step")
HELD_OUT_CHOICES = ("auto", "none")  # carve validation from the rows not drawn, or never


# ------------------------------------------------------------------------------------------------- the source


@dataclass
class Source:
    """Where the examples come from: a built-in task or a labelled file, with any held-out data given."""

    name: str  # the task name or the file's name, for display
    pool: list[Example]  # the examples the few-shot set is drawn from
    label_names: list[str]
    task: str = ""  # a built-in task's key; "" for a file
    path: str = ""  # the file read ("" for a task)
    validation: list[Example] | None = None  # a task's split or a validation file; None: none given
    validation_source: str = ""  # where `validation` came from (display)
    test: list[Example] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)  # texts for selection by agreement with the teacher
    unlabelled_source: str = ""
    description: str = ""
    data: LabelledData | None = None  # the file as read (report, column mapping); None for a task
    own_validation: list[Example] | None = None  # a task's own validation split (what `validation` starts as)
    carve: bool = True  # without given held-out data, hold out the rows not drawn (False: keep the last step)

    @property
    def report(self) -> LoadReport:
        """The reader's report (a short one for a task)."""
        if self.data is not None:
            return self.data.report
        return LoadReport(source=f"task:{self.task}", rows_read=len(self.pool))

    @property
    def columns(self) -> dict[str, str]:
        """The file's column mapping (text, label, text_pair); empty for a task."""
        if self.data is None:
            return {}
        data = self.data
        mapping = {"text": data.text_column, "label": data.label_column, "text_pair": data.text_pair_column}
        return {k: v for k, v in mapping.items() if v}


def is_task(name: str) -> bool:
    """`name` is a built-in task (demo, sst2, ...) rather than a file."""
    from cod.data.tasks import ALIASES, TASKS

    key = str(name or "").strip().lower()
    return bool(key) and (key in TASKS or key in ALIASES) and not Path(str(name)).expanduser().exists()


def task_source(name: str) -> Source:
    """A built-in task: its train split to draw from, its validation and test splits held out."""
    from cod.data.tasks import load_task

    task = load_task(name)
    return Source(
        name=task.name,
        pool=list(task.train),
        label_names=list(task.label_names),
        task=task.name,
        validation=list(task.validation),
        validation_source="the task's validation split",
        test=list(task.test),
        description=task.description,
        own_validation=list(task.validation),
    )


def file_source(path: str | Path, config: DataConfig | None = None, data: LabelledData | None = None) -> Source:
    """A labelled file (or the `data` already read from it): every row can be drawn; nothing is held out yet."""
    from cod.data.readers import load

    data = data if data is not None else load(path, config)
    return Source(
        name=Path(str(path)).name,
        pool=list(data.examples),
        label_names=list(data.label_names),
        path=str(path),
        data=data,
    )


def open_source(
    data: str | Path,
    config: DataConfig | None = None,
    *,
    validation: str | Path | None = None,
    test: str | Path | None = None,
    unlabelled: str | Path | None = None,
    unlabelled_column: str | None = None,
) -> Source:
    """A task or a file, with an optional test file and held-out data: `validation` a labelled file (or "none": keep
    the last step), else `unlabelled` a file of texts (selection by agreement with the teacher)."""
    source = task_source(str(data)) if is_task(str(data)) else file_source(data, config)
    if test:
        source.test = read_like(test, source.label_names)
    with_held_out(source, *held_out_choice(validation, unlabelled), text_column=unlabelled_column)
    return source


def held_out_choice(validation: str | None, unlabelled: str | None) -> tuple[str, str | None]:
    """(choice, file) from the command line's --validation FILE|none and --unlabelled FILE (validation first)."""
    if str(validation or "").strip().lower() == "none":
        return "none", None
    if validation:
        return "validation", validation
    return ("unlabelled", unlabelled) if unlabelled else ("auto", None)


def with_held_out(
    source: Source, choice: str, path: str | Path | None = None, text_column: str | None = None
) -> Source:
    """Set the source's held-out data: "auto" (a task's split, or a file's rows not drawn), "validation" (a labelled
    file), "unlabelled" (a file of texts) or "none" (no held-out data: keep the last step)."""
    if choice not in ("auto", "validation", "unlabelled", "none"):
        raise DataError(f"Held-out choice {choice!r} is not one of auto, validation, unlabelled, none.")
    if choice in ("validation", "unlabelled") and not path:
        kind = "labelled" if choice == "validation" else "text"
        raise DataError(f"Choose the file for the held-out data: a {kind} file (CSV, JSONL, ...).")
    source.validation = source.own_validation  # a task's split, until a file replaces it
    source.validation_source = "the task's validation split" if source.own_validation is not None else ""
    source.unlabelled, source.unlabelled_source, source.carve = [], "", choice != "none"
    if choice == "validation":
        source.validation, source.validation_source = read_like(path, source.label_names), Path(str(path)).name
    elif choice == "unlabelled":
        source.unlabelled, source.unlabelled_source = read_texts(path, text_column), Path(str(path)).name
    elif choice == "none":
        source.validation = None
    return source


def read_like(path: str | Path, label_names: Sequence[str]) -> list[Example]:
    """A labelled held-out file's examples, its labels mapped by name onto the training data's label order."""
    from cod.config import DataConfig
    from cod.data.readers import load

    names = list(label_names)
    data = load(path, DataConfig(label_names=tuple(names)))
    return list(data.examples)


def read_texts(path: str | Path, text_column: str | None = None) -> list[str]:
    """The texts of an unlabelled file (its text column; a label column, if any, is ignored)."""
    from cod.data.readers import load_texts

    return load_texts(path, text_column)


# ------------------------------------------------------------------------------------------------- the splits


@dataclass
class Splits:
    """One draw and its held-out data: what trains, what chooses the checkpoint, what is only evaluated."""

    k: int
    seed: int
    few_shot: list[Example]  # the seeded, class-balanced draw (classes interleaved)
    validation: list[Example] = field(default_factory=list)  # never holds an example of `few_shot`
    test: list[Example] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    held_out_from: str = "none"  # given (a file or a task split) | carved (rows not drawn) | none
    validation_source: str = ""
    dropped_drawn: int = 0  # examples of a given validation set removed because they are in the draw
    carved_rows: int = 0  # rows of the source taken as validation by the default
    pool_size: int = 0

    @property
    def real_half(self) -> list[Example]:
        """CoD's real half: the first k/2 of the draw."""
        return cod_real_half(self.few_shot)

    @property
    def selection(self) -> str:
        """How the checkpoint will be chosen: validation | teacher_agreement | last_step."""
        return "validation" if self.validation else "teacher_agreement" if self.unlabelled else "last_step"

    def lines(self) -> list[str]:
        """What trains and what is held out, in words (the CLI prints them; the app shows them)."""
        out = [
            f"Few-shot set: {len(self.few_shot)} examples (k={self.k}, seed={self.seed}) drawn from "
            f"{self.pool_size:,}."
        ]
        if self.held_out_from == "carved":
            out.append(
                f"Validation: {self.carved_rows:,} rows of the {self.pool_size:,} were not drawn and are held "
                f"out to choose the checkpoint (at most {HELD_OUT_MAX}; give a validation file, unlabelled "
                "texts or no held-out data to change this)."
            )
        elif self.validation:
            out.append(f"Validation: {len(self.validation):,} labelled examples from {self.validation_source}.")
        if self.dropped_drawn:
            out.append(
                f"Removed {self.dropped_drawn} validation example(s) that are in the few-shot set: checkpoints "
                "are never chosen on training examples."
            )
        if self.selection == "teacher_agreement":
            out.append(
                f"Checkpoint: the one agreeing most with the teacher on {len(self.unlabelled):,} unlabelled "
                f"texts from {self.validation_source or 'the unlabelled file'}."
            )
        elif self.selection == "last_step":
            out.append("Checkpoint: no held-out data, so training runs its fixed schedule and keeps the last step.")
        if self.test:
            out.append(f"Test: {len(self.test):,} examples, only evaluated (never trained on, never used to choose).")
        return out

    def sizes(self) -> dict[str, Any]:
        """The sizes and the selection mode, for a record or metrics."""
        return {
            "k": self.k,
            "seed": self.seed,
            "few_shot": len(self.few_shot),
            "validation": len(self.validation),
            "unlabelled": len(self.unlabelled),
            "test": len(self.test),
            "selection": self.selection,
            "held_out_from": self.held_out_from,
            "carved_rows": self.carved_rows,
        }


def split(source: Source, k: int, seed: int, held_out_rule: str | None = None) -> Splits:
    """Draw k examples and set the held-out data aside; validation never holds a drawn example.

    Given validation (a task's split, a file) is used minus any drawn text. Otherwise, with unlabelled texts the
    checkpoint is chosen by agreement with the teacher; with neither, `held_out_rule` "auto" (the default unless the
    source says none) holds out the rows that were not drawn (up to 500), and "none" (or a pool with nothing left
    over) keeps the last step.
    """
    held_out_rule = held_out_rule or ("auto" if source.carve else "none")
    if held_out_rule not in HELD_OUT_CHOICES:
        raise DataError(f"held_out {held_out_rule!r} is not one of {list(HELD_OUT_CHOICES)}.")
    k, seed = int(k), int(seed)
    draw = sample_few_shot(source.pool, k, seed, label_names=source.label_names)
    splits = Splits(k=k, seed=seed, few_shot=draw, test=list(source.test), pool_size=len(source.pool))
    if source.validation is not None:
        splits.validation, splits.dropped_drawn = without_drawn(source.validation, draw)
        splits.held_out_from, splits.validation_source = "given", source.validation_source
    elif source.unlabelled:
        drawn = {e.text for e in draw}
        splits.unlabelled = [t for t in source.unlabelled if t not in drawn]
        splits.dropped_drawn = len(source.unlabelled) - len(splits.unlabelled)
        splits.held_out_from, splits.validation_source = "given", source.unlabelled_source
    elif held_out_rule == "auto":
        splits.validation = held_out(source.pool, draw)
        splits.carved_rows = len(splits.validation)
        splits.held_out_from = "carved" if splits.validation else "none"
        splits.validation_source = f"the rows of {source.name} not drawn" if splits.validation else ""
    if source.test:
        splits.test, dropped = without_drawn(source.test, draw)
        splits.dropped_drawn += dropped
    return splits


# ---------------------------------------------------------------------------------------- curation and training


def training_counterfactuals(store: Store, project: str, include_unreviewed: bool = False) -> list[Counterfactual]:
    """The counterfactual that trains for each example: the user's edit, else the accepted proposal; proposals
    nobody reviewed only with `include_unreviewed`. One rule, used by the app and the command line."""
    return store.curated(project, include_unreviewed)


def run_distillation(
    config, teacher, student, splits: Splits, counterfactuals: Sequence[Counterfactual] | None = None, **kwargs: Any
):
    """Distil on the draw (with CoD: its real half and their counterfactuals), choosing the checkpoint as the
    splits say; `kwargs` go to `cod.distill.trainer.distill` (on_event, stop, out_dir, label_names, run_info)."""
    from cod.distill.trainer import distill

    if config.k != len(splits.few_shot):
        config = config.replace(k=len(splits.few_shot))
    run_info = {**kwargs.pop("run_info", {}), "splits": splits.sizes()}
    return distill(
        config,
        teacher,
        student,
        splits.few_shot,
        counterfactuals if config.cod else None,
        splits.validation,
        test=splits.test or None,
        unlabelled=splits.unlabelled or None,
        run_info=run_info,
        **kwargs,
    )


def examples_to_propose(store: Store, project: str) -> list[tuple[int, Example]]:
    """(example id, Example) of the project's CoD real half (the draw's first k/2) with no counterfactual yet."""
    rows = store.example_rows(project, FEW_SHOT)
    have = {r.example_id for r in store.counterfactuals(project)}
    return [(i, e) for i, e in cod_real_half(rows) if i not in have]


def checkpoint_line(metrics: dict[str, Any]) -> str:
    """How a run's checkpoint was chosen, in words, from its metrics (the CLI prints it, the app shows it)."""

    def value(key: str) -> str:
        v = metrics.get(key)
        return f"{v:.4f}" if isinstance(v, float) else "n/a"

    where = f"step {metrics.get('best_step')} of {metrics.get('steps')}"
    if metrics.get("selection") == "teacher_agreement":
        return (
            f"agreement with the teacher {value('student_teacher_agreement')} on "
            f"{metrics.get('unlabelled_size')} unlabelled texts, at {where}"
        )
    if metrics.get("selection") == "last_step":
        return f"the last step ({where}; no held-out data)"
    return (
        f"student validation accuracy {value('student_validation_accuracy')} on "
        f"{metrics.get('validation_size')} examples, at {where}"
    )


def recorded_distillation(
    store: Store,
    project: str,
    config,
    teacher,
    student,
    splits: Splits,
    counterfactuals: Sequence[Counterfactual] | None = None,
    *,
    out_dir: str | Path,
    **kwargs: Any,
):
    """`run_distillation`, recorded as a run of the project in the store (done, stopped or failed with its error)."""
    record = store.start_run(project, config, artifact_dir=out_dir)
    try:
        result = run_distillation(config, teacher, student, splits, counterfactuals, out_dir=out_dir, **kwargs)
    except Exception as err:
        store.finish_run(record.id, "failed", error=str(err)[:500])
        raise
    status = "stopped" if result.metrics.get("stopped") else "done"
    store.finish_run(record.id, status, metrics=result.metrics, artifact_dir=out_dir)
    return result, record.id


# ----------------------------------------------------------------------------------------------------- projects


def save_project(
    store: Store,
    name: str,
    source: Source,
    splits: Splits,
    *,
    teacher: str = "demo",
    student: str = "demo",
    settings: dict[str, Any] | None = None,
) -> Project:
    """Store a project: its source, draw, held-out data and (for a file) every row, so it reopens anywhere."""
    settings = {
        **(settings or {}),
        "source": source.name,
        "held_out_from": splits.held_out_from,
        "validation_source": splits.validation_source,
        "selection": splits.selection,
    }
    if splits.unlabelled:
        settings["unlabelled"] = list(splits.unlabelled)
    if source.description:
        settings["task_description"] = source.description
    store.create_project(
        name,
        source.label_names,
        examples=splits.few_shot,
        split=FEW_SHOT,
        task=source.task,
        data_source=source.path or f"task:{source.task}",
        columns=source.columns,
        teacher=teacher,
        student=student,
        k=splits.k,
        seed=splits.seed,
        settings=settings,
    )
    if splits.validation:
        store.add_examples(name, splits.validation, split=VALIDATION)
    if not source.task:  # a file may move or vanish (an upload's temp file): keep its rows in the project
        store.add_examples(name, source.pool, split=POOL)
    return store.project(name)


def open_project(store: Store, name: str) -> tuple[Project, Source, Splits]:
    """A stored project's source and splits, as saved; a project stored without a draw gets its seeded draw now."""
    project = store.project(name)
    settings = project.settings or {}
    if project.task and is_task(project.task):
        source = task_source(project.task)
    else:
        pool = store.examples(name, POOL)
        if not pool:
            raise DataError(f"Project {name!r} holds no examples to draw from: recreate it from its data file.")
        source = Source(
            name=settings.get("source") or Path(project.data_source).name or name,
            pool=pool,
            label_names=list(project.label_names),
            path=project.data_source,
            description=settings.get("task_description", ""),
        )
        report = LoadReport(source=source.name, rows_read=len(pool))
        source.data = LabelledData(
            pool,
            list(project.label_names),
            report,
            text_column=project.columns.get("text", "text"),
            label_column=project.columns.get("label", "label"),
            text_pair_column=project.columns.get("text_pair"),
        )
    draw = store.examples(name, FEW_SHOT)
    if not draw:  # made before projects held their draw: draw it now, and keep it
        splits = split(source, project.k, project.seed)
        store.add_examples(name, splits.few_shot, split=FEW_SHOT)
        if splits.validation and not store.examples(name, VALIDATION):
            store.add_examples(name, splits.validation, split=VALIDATION)
        return project, source, splits
    splits = Splits(
        k=project.k,
        seed=project.seed,
        few_shot=draw,
        test=list(source.test),
        pool_size=len(source.pool),
        validation=store.examples(name, VALIDATION),
        unlabelled=list(settings.get("unlabelled") or []),
        held_out_from=settings.get("held_out_from", "given"),
        validation_source=settings.get("validation_source", ""),
    )
    splits.carved_rows = len(splits.validation) if splits.held_out_from == "carved" else 0
    _keep_held_out(source, splits)
    return project, source, splits


def _keep_held_out(source: Source, splits: Splits) -> None:
    """A reopened project's source keeps the held-out choice it was made with, so a redraw keeps it too."""
    if splits.selection == "last_step":
        source.validation, source.carve = None, False
    elif splits.unlabelled:
        source.validation, source.unlabelled = None, list(splits.unlabelled)
        source.unlabelled_source = splits.validation_source
    elif splits.held_out_from == "given" and splits.validation_source != "the task's validation split":
        source.validation, source.validation_source = list(splits.validation), splits.validation_source
