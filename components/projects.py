"""Projects in the store: created on the first curation action, reopened by name after a reload or a crash.

What a project holds and how it reopens is `cod.experiment` (save_project / open_project), so a project made
here is listed by `python -m cod project ...` and one made there opens here.
"""

from __future__ import annotations

from cod.errors import DataError
from cod.store import project_name_for
from components.state import PageState


def project_names(services) -> list[str]:
    """Every project in the store, most recently changed first."""
    return [p.name for p in services.store().projects()]


def default_name(services, state: PageState) -> str:
    """A new, valid project name: source (shortened, cleaned), k and seed; numbered when taken."""
    return project_name_for(state.source, project_names(services), suffix=f"-k{state.k}-seed{state.seed}")


def ensure_project(services, state: PageState, name: str | None = None) -> str:
    """The session's project, created from the current draw if there is none yet."""
    from cod.experiment import save_project

    if state.project:
        return state.project
    if not state.few_shot or state.splits is None or state.source_obj is None:
        raise DataError("No few-shot set yet: draw one on the Data tab first.")
    name = (name or "").strip() or default_name(services, state)
    save_project(services.store(), name, state.source_obj, state.splits, teacher=state.teacher, student=state.student)
    state.project = name
    return name


def open_project(services, state: PageState, name: str) -> PageState:
    """Reopen a saved project (made here or by the command line): its data, draw, models and curation."""
    from cod.experiment import open_project as open_stored

    project, source, splits = open_stored(services.store(), name)
    state.show_source(source)
    state.show_splits(splits)
    state.source = source.task or project.settings.get("source") or source.name
    state.teacher, state.student = project.teacher, project.student
    state.project, state.rows, state.selected = name, [], None
    return state
