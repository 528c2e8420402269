"""Data tab: upload a file or pick a built-in task, map columns, read the validation report, draw the few-shot set."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from cod import DEMO
from cod.errors import DataError
from components.projects import open_project, project_names
from components.state import PageState
from components.style import esc, notice

PREVIEW_ROWS = 200
# Data events share a bounded group; each visitor's own ones run in order (one_at_a_time_per_visitor).
SERIAL = {"concurrency_id": "data", "concurrency_limit": 4}
AUTO = "(guess)"
NONE = "(none)"
# The Data tab's held-out choices -> `cod.experiment.with_held_out` choices.
HELD_OUT = {
    "Rows not drawn (default)": "auto",
    "A labelled validation file": "validation",
    "Unlabelled texts (agreement with the teacher)": "unlabelled",
    "None: fixed schedule, last step": "none",
}


# --- handlers (plain functions, tested without a server) --------------------------------------------------------
def task_names() -> list[str]:
    """Built-in tasks offered in the dropdown (the demo first)."""
    from cod.data.tasks import TASKS

    return [DEMO] + [n for n in TASKS if n != DEMO]


def load_task(state: PageState, name: str) -> PageState:
    """Point the session at a built-in task: its train split to draw from, validation and test kept aside."""
    from cod.experiment import task_source

    state.show_source(task_source((name or DEMO).strip()))
    state.source = (name or DEMO).strip()
    return state


def load_upload(
    state: PageState,
    path: str | Path | None,
    text: str | None = None,
    label: str | None = None,
    pair: str | None = None,
) -> PageState:
    """Read an uploaded file with the library (any format it reads) and the column mapping chosen."""
    if not path:
        raise DataError("No file uploaded: drop a CSV, TSV, JSONL, JSON or Parquet file, or pick a built-in task.")
    from cod.config import DataConfig
    from cod.experiment import file_source

    def pick(v: str | None) -> str | None:
        return None if v in (None, "", AUTO, NONE) else v

    config = DataConfig(text_column=pick(text), label_column=pick(label), text_pair_column=pick(pair))
    state.show_source(file_source(str(path), config))
    return state


def upload_columns(path: str | Path) -> list[str]:
    """The columns of a file that could not be read without a mapping (for the Column mapping controls)."""
    try:
        load_upload(PageState(), path)
    except DataError as err:
        return list(getattr(err, "columns", []))
    return []


def set_held_out(state: PageState, choice: str, path: str | Path | None = None) -> PageState:
    """The held-out data of the next draw: rows not drawn (default), a labelled file, unlabelled texts, or none."""
    from cod.experiment import with_held_out

    with_held_out(_source(state), HELD_OUT.get(choice, choice), path)
    return state


def held_out_label(state: PageState) -> str:
    """The Held-out data control's value for the session's source (so the control always says what applies)."""
    source, labels = state.source_obj, {v: k for k, v in HELD_OUT.items()}
    if source is None or (source.carve and not source.unlabelled and source.validation is source.own_validation):
        return labels["auto"]
    if not source.carve:
        return labels["none"]
    return labels["unlabelled" if source.unlabelled else "validation"]


def _source(state: PageState):
    if state.source_obj is None:
        raise DataError("No data yet: upload a file or pick a built-in task first.")
    return state.source_obj


def sample(state: PageState, k: int, seed: int) -> PageState:
    """Draw the class-balanced, seeded few-shot set and its held-out data (never holding a drawn example)."""
    from cod.experiment import split
    from cod.public import Limits, public_mode

    if public_mode():
        Limits.from_env().check(k=int(k))
    state.show_splits(split(_source(state), int(k), int(seed)))
    return state


def report_html(state: PageState) -> str:
    """The validation report in the library's own words; drops, duplicates and warnings stand out."""
    if state.data is None:
        return notice("Upload a file or pick a built-in task to begin.")
    r = state.data.report
    counts = state.data.label_counts() if hasattr(state.data, "label_counts") else {}
    label_counts = " · ".join(f"<b>{esc(name)}</b> {n:,}" for name, n in counts.items())
    parts = [
        f'<div class="cod-report-head"><b>{esc(state.source)}</b>: '
        f"{len(state.data.examples):,} examples · {label_counts}</div>"
    ]
    if state.extra.get("task_description") and not state.source_path:
        parts.append(f'<div class="cod-muted">{esc(state.extra["task_description"])}</div>')
    if state.splits is not None:  # the draw's own account: what trains, what chooses the checkpoint
        parts += [f'<div class="cod-muted cod-held-out">{esc(line)}</div>' for line in state.splits.lines()]
    if state.source_path:  # an upload: show every line of the library's report
        for line in r.lines() if hasattr(r, "lines") else []:
            kind = "warn" if line.startswith(("Warning", "Dropped ")) and not line.startswith("Dropped no") else ""
            if line.startswith("Duplicates:") and not line.startswith("Duplicates: none"):
                kind = "warn"
            parts.append(notice(esc(line), kind) if kind else f'<div class="cod-muted">{esc(line)}</div>')
    return f'<div class="cod-report">{"".join(parts)}</div>'


def examples_frame(state: PageState, examples: list | None = None, limit: int = PREVIEW_ROWS) -> pd.DataFrame:
    """Examples as a table with label names (the preview, or the few-shot set)."""
    rows = examples if examples is not None else (state.data.examples if state.data else [])
    names = state.label_names
    has_pair = any(e.text_pair for e in rows[:limit])
    out = []
    for e in rows[:limit]:
        row = {"label": names[e.label] if 0 <= e.label < len(names) else e.label, "text": e.text}
        if has_pair:
            row["text_pair"] = e.text_pair or ""
        out.append(row)
    return pd.DataFrame(out, columns=["label", "text"] + (["text_pair"] if has_pair else []))


def few_shot_frame(state: PageState) -> pd.DataFrame:
    """The drawn few-shot set, marking CoD's real half."""
    df = examples_frame(state, state.few_shot, limit=len(state.few_shot))
    half = len(state.few_shot) // 2
    df.insert(0, "role", ["CoD real half" if i < half else "KD only" for i in range(len(df))])
    return df


# --- layout -----------------------------------------------------------------------------------------------------
def build(services, state):
    """The Data tab's widgets and events; returns the components other tabs listen to."""
    import gradio as gr

    from components.services import one_at_a_time_per_visitor, ui_errors

    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            gr.Markdown("### Source")
            task = gr.Dropdown(task_names(), value=services.default_task, label="Built-in task", elem_id="task")
            upload = gr.File(
                label="…or upload a labelled file",
                file_types=[".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet"],
                elem_id="upload",
            )
            with gr.Accordion("Column mapping", open=False) as mapping_box:
                text_col = gr.Dropdown([AUTO], value=AUTO, label="Text column", allow_custom_value=True)
                pair_col = gr.Dropdown([NONE], value=NONE, label="Second text column (pairs)", allow_custom_value=True)
                label_col = gr.Dropdown([AUTO], value=AUTO, label="Label column", allow_custom_value=True)
                remap = gr.Button("Apply mapping", size="sm")
            gr.Markdown("### Few-shot draw")
            with gr.Row():
                k = gr.Number(16, label="k (examples)", precision=0, minimum=2, maximum=1024, elem_id="k")
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="seed")
            with gr.Accordion("Held-out data (chooses the checkpoint)", open=False):
                held = gr.Radio(
                    list(HELD_OUT), value=next(iter(HELD_OUT)), label="Choose checkpoints on", elem_id="held-out"
                )
                held_file = gr.File(
                    label="Validation file (labelled) or texts file (unlabelled)",
                    file_types=[".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet"],
                    elem_id="held-out-file",
                )
            draw = gr.Button("Draw few-shot set", variant="primary", elem_id="draw")
            gr.Markdown("### Saved projects")
            saved = gr.Dropdown(
                [],
                label="Curation is saved as you go: reopen a project",
                allow_custom_value=True,
                elem_id="saved-projects",
            )
            reopen = gr.Button("Open project", size="sm", elem_id="open-project")
        with gr.Column(scale=3):
            report = gr.HTML(report_html(PageState()), elem_id="report")
            with gr.Tabs(selected="preview") as views:
                with gr.Tab("Few-shot set", id="fewshot"):
                    fewshot = gr.Dataframe(
                        few_shot_frame(PageState()),
                        interactive=False,
                        wrap=True,
                        max_height=420,
                        column_widths=["15%", "11%", "74%"],
                        elem_id="fewshot",
                    )
                with gr.Tab("Preview", id="preview"):
                    preview = gr.Dataframe(
                        pd.DataFrame(columns=["label", "text"]),
                        interactive=False,
                        wrap=True,
                        max_height=420,
                        column_widths=["15%", "85%"],
                        elem_id="preview",
                    )

    def outputs(s: PageState):
        view = gr.Tabs(selected="fewshot" if s.few_shot else "preview")
        return s, report_html(s), examples_frame(s), few_shot_frame(s), view, gr.update(value=held_out_label(s))

    def task_drawn(s: PageState, name: str, k_: float, seed_: float):
        s = load_task(s, name)
        if s.data and len(s.data.examples) >= int(k_ or 2):
            s = sample(s, int(k_), int(seed_))
        return outputs(s)

    def on_task(s: PageState, name: str, k_: float, seed_: float):
        return task_drawn(s, name, k_, seed_)

    def on_first_visit(s: PageState, name: str, k_: float, seed_: float):
        # The page's first load draws the default task, unless the visitor's upload got in first: then it keeps it.
        return outputs(s) if s.data is not None else task_drawn(s, name, k_, seed_)

    def on_upload(s: PageState, path: str | None):
        if not path:
            return (*outputs(s), gr.update(), gr.update(), gr.update(), gr.update())
        try:
            s = load_upload(s, path)
        except DataError as err:
            cols = list(getattr(err, "columns", []))
            if not cols:
                raise
            # No label-like column: offer the columns in the mapping controls, and say which control picks it.
            gr.Warning(str(err))
            return (
                s,
                notice(esc(str(err)), "warn"),
                gr.update(),
                gr.update(),
                gr.update(),
                gr.update(),
                gr.update(choices=[AUTO] + cols),
                gr.update(choices=[NONE] + cols),
                gr.update(choices=[AUTO] + cols, value=AUTO),
                gr.update(open=True),
            )
        cols = list(s.data.report.columns)
        choices = [AUTO] + cols
        return (
            *outputs(s),
            gr.update(choices=choices, value=s.mapping.get("text") or AUTO),
            gr.update(choices=[NONE] + cols, value=s.mapping.get("text_pair") or NONE),
            gr.update(choices=choices, value=s.mapping.get("label") or AUTO),
            gr.update(open=True),
        )

    def on_remap(s: PageState, path, text, pair, label):
        return outputs(load_upload(s, path, text, label, pair))

    def on_draw(s: PageState, k_: float, seed_: float):
        return outputs(sample(s, int(k_ or 16), int(seed_ or 0)))

    def on_held_out(s: PageState, choice: str, path: str | None, k_: float, seed_: float):
        s = set_held_out(s, choice, path)
        return outputs(sample(s, int(k_ or 16), int(seed_ or 0)) if s.few_shot else s)

    def on_open(s: PageState, name: str | None):
        if not name:
            raise DataError("Choose a saved project to open.")
        s = open_project(services, s, name)
        return (*outputs(s), gr.update(value=s.source if s.source in task_names() else None), s.k, s.seed)

    def on_projects(s: PageState):  # the state names the visitor whose projects are listed
        return gr.Dropdown(choices=project_names(services))

    main = [state, report, preview, fewshot, views, held]
    # Events that replace the session's data run one at a time per visitor, so a slow first load of the default
    # task can never land after, and overwrite, a file the user uploaded meanwhile.
    on_task, on_first_visit, on_upload, on_remap, on_draw, on_open, on_held_out = (
        one_at_a_time_per_visitor(f)
        for f in (on_task, on_first_visit, on_upload, on_remap, on_draw, on_open, on_held_out)
    )
    task_event = task.input(ui_errors(on_task), [state, task, k, seed], main, api_name="load_task", **SERIAL)
    upload.upload(
        ui_errors(on_upload),
        [state, upload],
        main + [text_col, pair_col, label_col, mapping_box],
        api_name="upload",
        **SERIAL,
    )
    remap.click(ui_errors(on_remap), [state, upload, text_col, pair_col, label_col], main, **SERIAL)
    held_event = gr.on(
        [held.input, held_file.upload],
        ui_errors(on_held_out),
        [state, held, held_file, k, seed],
        main,
        api_name="held_out",
        **SERIAL,
    )
    draw_event = draw.click(ui_errors(on_draw), [state, k, seed], main, api_name="draw", **SERIAL)
    open_event = reopen.click(
        ui_errors(on_open), [state, saved], main + [task, k, seed], api_name="open_project", **SERIAL
    )
    saved.focus(ui_errors(on_projects), [state], saved, show_progress="hidden", api_visibility="private")
    return SimpleNamespace(
        task=task,
        upload=upload,
        k=k,
        seed=seed,
        draw=draw,
        report=report,
        preview=preview,
        fewshot=fewshot,
        on_task=ui_errors(on_task),
        on_first_visit=ui_errors(on_first_visit),
        outputs=main,
        changed=[task_event, draw_event, open_event, held_event],
    )
