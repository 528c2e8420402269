"""Projects in the store: created on the first curation action, reopened by name after a reload or a crash."""

from __future__ import annotations

import re

from components.state import PageState
from cod.errors import DataError

FEW_SHOT, VALIDATION, POOL = "fewshot", "validation", "train"


def project_names(services) -> list[str]:
    """Every project in the store, most recently changed first."""
    return [p.name for p in services.store().projects()]


def default_name(services, state: PageState) -> str:
    """A new, readable project name: source, k and seed (numbered when taken)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", state.source.rsplit(".", 1)[0] or "project").strip("-") or "project"
    base = f"{base}-k{state.k}-seed{state.seed}"
    taken = set(project_names(services))
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


def ensure_project(services, state: PageState, name: str | None = None) -> str:
    """The session's project, created from the current draw if there is none yet."""
    if state.project:
        return state.project
    if not state.few_shot:
        raise DataError("No few-shot set yet: draw one on the Data tab first.")
    store = services.store()
    name = (name or "").strip() or default_name(services, state)
    upload = bool(state.source_path)
    store.create_project(
        name,
        state.label_names,
        examples=state.few_shot,
        split=FEW_SHOT,
        task="" if upload else state.source,
        data_source=state.source_path or f"task:{state.source}",
        columns={k: v for k, v in state.mapping.items() if v},
        teacher=state.teacher,
        student=state.student,
        k=state.k,
        seed=state.seed,
        settings={"source": state.source},
    )
    if state.validation:
        store.add_examples(name, state.validation, split=VALIDATION)
    if upload and state.data is not None:  # an upload's temp file may vanish: keep its examples in the project
        store.add_examples(name, state.data.examples, split=POOL)
    state.project = name
    return name


def open_project(services, state: PageState, name: str) -> PageState:
    """Reopen a saved project: its data, draw, models and curation exactly as last saved."""
    from cod.data.readers import LabelledData, LoadReport

    store = services.store()
    project = store.project(name)
    state.label_names = list(project.label_names)
    state.k, state.seed = project.k, project.seed
    state.teacher, state.student = project.teacher, project.student
    state.few_shot = store.examples(name, FEW_SHOT)
    state.mapping = dict(project.columns)
    state.source = project.settings.get("source") or project.task or project.data_source
    state.test = []
    if project.task:  # a built-in task: its splits come from the library again
        from components.data import load_task

        draw, labels = state.few_shot, state.label_names
        load_task(state, project.task)
        state.few_shot, state.label_names = draw, labels
    else:
        pool = store.examples(name, POOL)
        state.source_path = project.data_source
        report = LoadReport(source=project.data_source, rows_read=len(pool))
        state.data = LabelledData(examples=pool, label_names=state.label_names, report=report)
    state.validation = store.examples(name, VALIDATION) or state.validation
    state.project, state.rows, state.selected = name, [], None
    return state
