"""Distill tab: settings, start, a live chart of the loss parts and validation accuracy, progress with ETA, stop.

Runs go through the worker's "distill" lane: one at a time per process, later ones wait in order (and say so);
a second start from the same session while its run is going is refused with a clear message. Every run is
recorded in the store (config, event timeline, metrics, artifact folder).
"""

from __future__ import annotations

import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cod.errors import DistillError
from cod.paths import unique_folder
from components.counterfactuals import curated
from components.projects import ensure_project
from components.services import CONTROL, DONE, FOLLOW, QUEUED, RUNNING, STOPPED, gpu, shown_path, ui_errors
from components.state import PageState
from components.style import SERIES_COLORS, STUDENT_COLOR, TEACHER_COLOR, badge, esc, notice

METHODS = {"KD (logits)": "kd", "LWD (logits + hidden states)": "lwd", "CE only (no teacher)": "ce"}
LOG_EVERY = 10  # steps between step events written to the store (eval/done/stopped are always written)
REDRAW_S = 2.0  # seconds between chart redraws while a run goes
MAX_POINTS = 400  # points per loss line: a long run's chart shows every n-th step (and the last)


def _as_dict(event) -> dict:
    if is_dataclass(event):
        return asdict(event)
    return dict(event)


def _held_out_accuracy(metrics: dict):
    """The accuracy the checkpoint is chosen on: on validation, or agreement with the teacher on unlabelled texts."""
    return metrics.get("val_accuracy", metrics.get("agreement_accuracy"))


def make_config(
    state: PageState, method: str, cod: bool, alpha, temperature, beta, epochs, lr, batch, lora, max_validation=None
):
    """A validated DistillConfig from the form (the library's ConfigError names a bad value); settings the form does
    not show (patience, evaluations) keep the library's defaults."""
    from cod.config import DistillConfig
    from cod.public import Limits, public_mode

    config = DistillConfig(
        method=METHODS.get(method, method),
        cod=bool(cod),
        k=max(2, len(state.few_shot)),
        seed=state.seed,
        alpha=float(alpha),
        temperature=float(temperature),
        beta=float(beta),
        epochs=int(epochs),
        learning_rate=float(lr),
        batch_size=int(batch),
        lora=bool(lora),
        max_validation=DistillConfig.max_validation if max_validation is None else int(max_validation or 0),
    )
    if public_mode():
        steps = config.max_steps or config.epochs * -(-config.k // config.batch_size)
        Limits.from_env().check(k=config.k, epochs=config.epochs, batch_size=config.batch_size, steps=steps)
    return config


def start_run(
    services, state: PageState, session: str, config, resume_from: int | None = None, include_unreviewed: bool = False
) -> str:
    """Queue a distillation of the session's draw (and, with CoD, the counterfactual that trains for each example:
    the edit, else the accepted one; unreviewed proposals only with `include_unreviewed`); returns the job id.

    `resume_from`: a stopped, failed or interrupted run of the project to continue from its last checkpoint."""
    if not state.few_shot or state.splits is None:
        raise DistillError("No few-shot set yet: draw one on the Data tab first.")
    mine = services.worker.running("distill", owner=session)
    if mine:
        raise DistillError(
            "A distillation from this session is already queued or running: stop it or wait for it to finish."
        )
    project = ensure_project(services, state)
    counterfactuals = None
    if config.cod:
        counterfactuals = curated(services, state, include_unreviewed)
        if not counterfactuals:
            raise DistillError(
                "CoD needs curated counterfactuals: accept some on the Counterfactuals tab, tick 'also unreviewed "
                "proposals', or turn CoD off for plain KD."
            )
    teacher = services.teacher(state.teacher) if config.method != "ce" or config.cod else None
    store = services.store()
    if resume_from is not None:
        old = store.run(int(resume_from))
        if old.status not in ("stopped", "failed", "interrupted") or not old.artifact_dir:
            raise DistillError(
                f"Run {resume_from} is {old.status}: only a stopped, failed or interrupted run can be resumed."
            )
        out_dir = Path(old.artifact_dir)
    else:  # a folder of its own, even when two runs of one project start in the same second
        out_dir = unique_folder(services.artifacts_dir() / "runs", f"{project}-{config.label}")
    splits, labels, student = state.splits, list(state.label_names), state.student

    def run(job):
        from cod.background import without_model
        from cod.experiment import run_distillation

        if resume_from is not None:
            record = store.resume_run(
                int(resume_from)
            )  # same config and folder: training restarts from its checkpoint
        else:
            record = store.start_run(project, config, artifact_dir=out_dir)
        job.emit({"kind": "started", "run_id": record.id})

        def on_event(event):
            job.emit(event)
            d = _as_dict(event)
            if d.get("kind") != "step" or d.get("step", 0) % LOG_EVERY == 0:
                store.log_event(record.id, d)

        try:  # in public mode in a child process at the lowest priority: live predictions go first
            result = services.run_heavy(
                run_distillation,
                config,
                teacher,
                student,
                splits,
                counterfactuals,
                on_event=on_event,
                stop=job.should_stop,
                portable=without_model,
                out_dir=out_dir,
                label_names=labels,
                run_info={"project": project, "app": "cod-studio"},
            )
        except Exception as err:
            store.finish_run(record.id, "failed", error=str(err)[:500])
            raise
        status = "stopped" if result.metrics.get("stopped") else "done"
        store.finish_run(record.id, status, metrics=result.metrics, artifact_dir=out_dir)
        key = str(record.id)
        services.results[key] = result
        return key

    job = services.worker.submit("distill", gpu(run, duration=600), owner=session, visitor=state.owner)
    state.run_job = job.id
    return job.id


def chart(events: list) -> go.Figure:
    """Loss parts (left axis, log) and validation accuracy (right axis) against the step."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    steps = [e for e in map(_as_dict, events) if e.get("kind") == "step"]
    if len(steps) > MAX_POINTS:
        steps = steps[:: -(-len(steps) // MAX_POINTS)] + steps[-1:]
    evals = [e for e in map(_as_dict, events) if e.get("kind") == "eval"]
    for part in ("loss", "ce", "kd", "lwd"):
        xs = [e["step"] for e in steps if part in e.get("losses", {})]
        if xs:
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=[e["losses"][part] for e in steps if part in e.get("losses", {})],
                    name=part,
                    mode="lines" if len(xs) > 2 else "lines+markers",
                    line={
                        "color": SERIES_COLORS[part],
                        "width": 2.5 if part == "loss" else 1.5,
                        "dash": "solid" if part == "loss" else "dot",
                    },
                ),
                secondary_y=False,
            )
    if evals:
        fig.add_trace(
            go.Scatter(
                x=[e["step"] for e in evals],
                y=[_held_out_accuracy(e["metrics"]) for e in evals],
                mode="lines+markers",
                name="student validation accuracy",
                line={"color": STUDENT_COLOR, "width": 3},
                marker={"size": 7},
            ),
            secondary_y=True,
        )
    fig.update_layout(
        template="plotly_white",
        height=380,
        margin={"l": 50, "r": 50, "t": 30, "b": 40},
        legend={"orientation": "h", "y": -0.18},
        uirevision="keep",
    )
    fig.update_xaxes(title_text="step", rangemode="tozero")
    fig.update_yaxes(title_text="loss (log)", type="log", dtick="D2", secondary_y=False)
    fig.update_yaxes(title_text="validation accuracy", range=[0, 1], secondary_y=True, showgrid=False)
    return fig


def _eta(seconds) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_html(services, job) -> str:
    """Status line: queued position, step of total with ETA, or the outcome."""
    if job is None:
        return notice("Choose settings and press <b>Start</b>.")
    events = [_as_dict(e) for e in job.events]
    steps = [e for e in events if e.get("kind") in ("step", "eval")]
    last = steps[-1] if steps else {}
    step, total = last.get("step", 0), last.get("total", 0)
    pct = 100 * step / total if total else 0
    bar = f'<div class="cod-progress"><span style="width:{pct:.0f}%"></span></div>'
    if job.status == QUEUED:
        return notice(
            f"Queued: {services.worker.ahead_of(job)} run(s) ahead (one distillation runs at a time). "
            "It starts by itself.",
            "info",
        )
    if job.status == RUNNING:
        if not steps:
            return bar + (
                '<div class="cod-muted">'
                "Preparing: loading the student and scoring the training set with the teacher…</div>"
            )
        eta = next((e.get("eta_s") for e in reversed(events) if e.get("kind") == "step"), None)
        if total and step >= total:
            return bar + (
                '<div class="cod-muted">'
                "Training done: scoring the student (and teacher) on the held-out test split…</div>"
            )
        return bar + (
            '<div class="cod-muted">'
            f'Step {step} of {total} · epoch {last.get("epoch", 0):.1f} · ETA {_eta(eta)}</div>'
        )
    if job.error:
        return notice(esc(job.error), "error")
    word = "Stopped" if job.status == STOPPED else "Finished"
    return bar + f'<div class="cod-muted">{word} at step {step} of {total}.</div>'


def result_html(services, job) -> str:
    """Final metrics: student against teacher, on validation and test."""
    if job is None or job.status not in (DONE, STOPPED) or job.result is None:
        return ""
    result = services.results.get(job.result)
    if result is None:
        return ""
    from cod.experiment import checkpoint_line

    m = result.metrics

    def pct(key):
        v = m.get(key)
        return f"{100 * v:.1f}%" if isinstance(v, int | float) else "–"

    split = "test" if isinstance(m.get("student_test_accuracy"), int | float) else "validation"
    student_key = "student_test_accuracy" if split == "test" else "student_validation_accuracy"
    return (
        '<div class="cod-stats">'
        f'<div class="cod-stat"><b style="color:{STUDENT_COLOR}">{pct(student_key)}</b>'
        f"<span>student {split} accuracy</span></div>"
        f'<div class="cod-stat"><b style="color:{TEACHER_COLOR}">{pct(f"teacher_{split}_accuracy")}</b>'
        f"<span>teacher {split} accuracy</span></div>"
        + (
            f'<div class="cod-stat"><b>{pct("test_agreement")}</b><span>agreement on test</span></div>'
            if split == "test"
            else ""
        )
        + f'<div class="cod-stat"><b>{m.get("steps", "–")}</b><span>steps · {esc(m.get("method", ""))}</span></div>'
        f'</div><div class="cod-muted">Checkpoint: {esc(checkpoint_line(m))}</div>'
        f'<div class="cod-muted">{badge("student", "student")} run {esc(job.result)} saved to '
        f'{esc(shown_path(result.out_dir))}</div>'
    )


def runs_frame(services, state: PageState) -> pd.DataFrame:
    """The project's runs, newest first: what ran, how it ended, the student's accuracy."""
    cols = ["run", "method", "k", "status", "student acc.", "teacher acc.", "started"]
    if not state.project:
        return pd.DataFrame(columns=cols)
    rows = []
    for run in services.store().runs(state.project):
        m = run.metrics
        split = "test" if isinstance(m.get("student_test_accuracy"), int | float) else "validation"
        acc, tacc = m.get(f"student_{split}_accuracy"), m.get(f"teacher_{split}_accuracy")
        rows.append(
            {
                "run": run.id,
                "method": m.get("method") or run.config.get("method"),
                "k": run.config.get("k"),
                "status": run.status + (f" (from {run.resumed_from})" if run.resumed_from else ""),
                "student acc.": f"{acc:.3f} {split}" if isinstance(acc, int | float) else "–",
                "teacher acc.": f"{tacc:.3f}" if isinstance(tacc, int | float) else "–",
                "started": run.started_at[:19].replace("T", " "),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def build(services, state):
    """The Distill tab; its fields start at the library's defaults (`DistillConfig`)."""
    from cod.config import DistillConfig

    defaults = DistillConfig()
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            gr.Markdown("### Settings")
            method = gr.Dropdown(list(METHODS), value="KD (logits)", label="Method", elem_id="method")
            cod = gr.Checkbox(True, label="CoD: half real examples, half their curated counterfactuals", elem_id="cod")
            with gr.Row():
                alpha = gr.Number(defaults.alpha, label="alpha (KD weight)", minimum=0)
                temperature = gr.Number(defaults.temperature, label="T (temperature)", minimum=0.1)
            beta = gr.Number(defaults.beta, label="beta (LWD weight)", minimum=0)
            with gr.Row():
                epochs = gr.Number(defaults.epochs, label="Epochs", precision=0, minimum=1, elem_id="epochs")
                batch = gr.Number(defaults.batch_size, label="Batch", precision=0, minimum=1, elem_id="batch")
            lr = gr.Number(defaults.learning_rate, label="Learning rate", minimum=1e-7, elem_id="lr")
            lora = gr.Checkbox(defaults.lora, label="LoRA adapters (instead of full fine-tuning)")
            unreviewed = gr.Checkbox(
                False, label="CoD: also train on proposals nobody reviewed yet", elem_id="unreviewed"
            )
            max_val = gr.Number(
                defaults.max_validation,
                label="Validation examples per evaluation (0: all)",
                precision=0,
                minimum=0,
                elem_id="max-val",
            )
            with gr.Row():
                start = gr.Button("Start", variant="primary", elem_id="start-distill")
                stop = gr.Button("Stop", variant="stop", elem_id="stop-distill")
        with gr.Column(scale=3):
            progress = gr.HTML(progress_html(services, None), elem_id="distill-progress")
            plot = gr.Plot(chart([]), label="Training", elem_id="distill-chart")
            result = gr.HTML(elem_id="distill-result")
            runs = gr.Dataframe(
                runs_frame(services, PageState()),
                label="Runs of this project",
                interactive=False,
                max_height=240,
                elem_id="runs",
            )
            with gr.Row():
                resume_id = gr.Number(
                    None,
                    label="Run to resume (stopped, failed or interrupted)",
                    precision=0,
                    scale=3,
                    elem_id="resume-id",
                )
                resume = gr.Button("Resume", scale=1, elem_id="resume")

    form = [method, cod, alpha, temperature, beta, epochs, lr, batch, lora, max_val]

    def on_start(s: PageState, request: gr.Request, *values):
        session = getattr(request, "session_hash", "") or ""
        *form_values, unreviewed_ = values
        yield from follow(
            s, start_run(services, s, session, make_config(s, *form_values), include_unreviewed=bool(unreviewed_))
        )

    def on_resume(s: PageState, request: gr.Request, run_id):
        if run_id is None:
            raise DistillError("Give the number of the run to resume (see the table of runs).")
        from cod.config import DistillConfig

        config = DistillConfig.from_dict(services.store().run(int(run_id)).config)
        session = getattr(request, "session_hash", "") or ""
        yield from follow(s, start_run(services, s, session, config, resume_from=int(run_id)))

    def follow(s: PageState, job_id: str):
        job = services.worker.get(job_id)
        seen, status, shown = -1, None, 0.0
        while True:
            # New steps redraw the chart at most every REDRAW_S (a long run's chart is large to build and send);
            # a change of status at once.
            due = len(job.events) != seen and time.monotonic() - shown >= REDRAW_S
            if due or job.status != status or job.done:
                seen, status, shown = len(job.events), job.status, time.monotonic()
                yield s, progress_html(services, job), chart(job.events), result_html(services, job), gr.update()
            if job.done:
                break
            time.sleep(0.5)
        if job.status == DONE or job.status == STOPPED:
            s.run_key = job.result
        yield s, progress_html(services, job), chart(job.events), result_html(services, job), runs_frame(services, s)
        if job.error:
            raise gr.Error(job.error, print_exception=False)

    def on_stop(s: PageState):
        job = services.worker.get(s.run_job)
        if job is None or job.done:
            return gr.update()
        job.stop()
        return notice("Stopping: the run ends after the current step and keeps its best checkpoint…")

    outputs = [state, progress, plot, result, runs]
    run_event = start.click(ui_errors(on_start), [state, *form, unreviewed], outputs, api_name="distill", **FOLLOW)
    resume.click(ui_errors(on_resume), [state, resume_id], outputs, api_name="resume_distill", **FOLLOW)
    stop.click(on_stop, [state], progress, api_name="stop_distill", **CONTROL)
    return SimpleNamespace(
        run_event=run_event,
        plot=plot,
        progress=progress,
        refresh=(ui_errors(lambda s: runs_frame(services, s)), [state], [runs]),
    )
