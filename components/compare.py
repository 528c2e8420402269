"""Compare tab: accuracy against k (sweeps and runs), teacher vs student metrics, the boundary view, edit paths,
and held-out examples where teacher and student disagree."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pandas as pd

from cod.errors import DistillError
from components.services import ui_errors
from components.state import PageState
from components.style import brand, esc, notice

EVAL_LIMIT = 1000  # held-out examples scored per comparison


def run_choices(services, state: PageState) -> list[tuple[str, str]]:
    """(label, key) of finished runs of the session's project (newest first) plus students kept in memory."""
    out: list[tuple[str, str]] = []
    if state.project:
        for run in services.store().runs(state.project):
            if run.status in ("done", "stopped") and run.artifact_dir and (Path(run.artifact_dir) / "model").exists():
                acc = run.metrics.get("student_test_accuracy")
                label = (
                    f"run {run.id} · {run.metrics.get('method', run.config.get('method'))} · k={run.config.get('k')}"
                )
                out.append((label + (f" · test {acc:.3f}" if isinstance(acc, float) else ""), str(run.id)))
    return out


def student_for(services, state: PageState, key: str | None):
    """A scorer for the chosen run's student (kept in memory after a run; else loaded from its folder)."""
    from cod.eval.metrics import StudentScorer

    key = key or state.run_key
    if not key:
        raise DistillError("No distilled student yet: run a distillation on the Distill tab first.")
    run = services.store().run(int(key))  # the visitor's own run, or an error (before the in-memory copy is used)
    result = services.results.get(str(key))
    if result is not None and result.model is not None:  # a run in a child process left its student on disk
        return StudentScorer(result.model, result.tokenizer)
    if not run.artifact_dir or not (Path(run.artifact_dir) / "model").exists():
        raise DistillError(f"Run {key} has no saved student (status {run.status}): pick a finished run.")
    from cod.modeling.loading import load_classifier

    model, tokenizer = load_classifier(str(Path(run.artifact_dir) / "model"), trusted=True)
    scorer = StudentScorer(model, tokenizer)
    return scorer


def held_out(state: PageState) -> tuple[list, str]:
    """The held-out examples to compare on: test when the task has one, else validation."""
    if state.test:
        return state.test[:EVAL_LIMIT], "test"
    return state.validation[:EVAL_LIMIT], "validation"


def metrics_and_disagreements(services, state: PageState, key: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Teacher and student metrics on held-out examples, and the examples where they disagree."""
    from cod.eval.metrics import evaluate, evaluation_table, scorer_probs

    teacher, student = services.teacher(state.teacher), student_for(services, state, key)
    examples, split = held_out(state)
    if not examples:
        raise DistillError(
            "No held-out examples to compare on: give a labelled validation file on the Data tab "
            "(Held-out data), or pick a task with validation/test splits."
        )
    metrics = evaluate(teacher, student, examples, state.label_names)
    table = (
        evaluation_table(metrics)
        .round(3)
        .rename(
            columns={
                "macro_f1": "macro F1",
                "ece": "ECE",
                "agreement_with_teacher": "agreement",
                "kl_from_teacher": "KL(t‖s)",
            }
        )
    )
    table.insert(1, "on", f"{split} ({len(examples)})")
    texts = [e.text for e in examples]
    t, s = teacher.predict_proba(texts), scorer_probs(student, texts, len(state.label_names))
    names = state.label_names
    rows = [
        {
            "text": e.text,
            "gold": names[e.label],
            "teacher": f'<span class="cod-t">{esc(names[ti])}</span> {t[i, ti]:.2f}',
            "student": f'<span class="cod-s">{esc(names[si])}</span> {s[i, si]:.2f}',
            "|Δp|": round(float(np.abs(t[i] - s[i]).max()), 3),
        }
        for i, (e, ti, si) in enumerate(zip(examples, t.argmax(1), s.argmax(1)))
        if ti != si
    ]
    disagree = pd.DataFrame(rows, columns=["text", "gold", "teacher", "student", "|Δp|"])
    return table, disagree.sort_values("|Δp|", ascending=False).head(200)


def boundary_figures(services, state: PageState, key: str | None, n_pairs: int, pair: int = 0):
    """Probe pairs on held-out examples: the boundary map and one pair's edit path (teacher orange, student blue)."""
    from cod.eval import boundary, plots

    teacher, student = services.teacher(state.teacher), student_for(services, state, key)
    probes = state.extra.get("probes")
    if probes is None or probes[0] != int(n_pairs):
        pool = state.validation or state.test
        pairs = boundary.probe_pairs(
            pool, teacher, n=int(n_pairs), seed=state.seed, train_texts=[e.text for e in state.few_shot]
        )
        state.extra["probes"] = probes = (int(n_pairs), pairs)
    pairs = probes[1]
    if not pairs:
        raise DistillError("The offline proposer flipped none of the probe examples: try more probe pairs.")
    points = boundary.boundary_points(pairs, teacher, student, label_names=state.label_names)
    fig_map = brand(plots.boundary_view(points))
    path = boundary.edit_path_table(pairs, teacher, student)
    pid = int(pair) % len(pairs)
    fig_path = brand(
        plots.edit_path_plot(
            path, pair_ids=[pid], title=f"Edit path of probe pair {pid}: " f"“{pairs[pid].text[:60]}…”"
        )
    )
    fidelity = boundary.boundary_fidelity(pairs, teacher, student)
    return fig_map, fig_path, fidelity


def accuracy_figure(services, state: PageState):
    """Student test accuracy against k from the project's finished runs and recorded sweeps (mean and interval)."""
    from cod.eval import plots
    from cod.eval.stats import summarise

    rows = []
    store = services.store()
    project = state.project
    for run in store.runs(project) if project else []:
        split = "test" if isinstance(run.metrics.get("student_test_accuracy"), int | float) else "validation"
        acc = run.metrics.get(f"student_{split}_accuracy")
        if run.status == "done" and isinstance(acc, int | float):
            rows.append(
                {
                    "method": run.metrics.get("method", run.config.get("method")),
                    "k": run.config.get("k"),
                    "accuracy": acc,
                    "teacher": run.metrics.get(f"teacher_{split}_accuracy"),
                    "split": split,
                }
            )
    for sweep in store.sweeps(project) if project else store.sweeps():
        for r in store.sweep_results(sweep["id"]):
            # results.csv rows of `cod sweep` say student_accuracy / teacher_accuracy (on test);
            # run metrics say *_test_*
            acc = next((r[k] for k in ("student_test_accuracy", "student_accuracy", "accuracy") if k in r), None)
            teacher = next((r[k] for k in ("teacher_test_accuracy", "teacher_accuracy") if k in r), None)
            if isinstance(acc, int | float) and r.get("k") is not None:
                rows.append(
                    {"method": r.get("method"), "k": r.get("k"), "accuracy": acc, "teacher": teacher, "split": "test"}
                )
    if not rows:
        return None
    df = pd.DataFrame(rows)
    if (df.split == "test").any():  # never mix test and validation figures on one axis
        df = df[df.split == "test"]
    summary = pd.DataFrame(
        [
            {"method": m, "k": k, **summarise(g.accuracy.tolist()).to_dict()}
            for (m, k), g in df.groupby(["method", "k"])
        ]
    )
    teacher = df.teacher.dropna()
    split = df.split.iloc[0]
    fig = plots.accuracy_vs_k(
        summary,
        float(teacher.mean()) if len(teacher) else None,
        title=f"Student {split} accuracy against k ({len(df)} run(s))",
    )
    fig.update_layout(height=340, margin={"l": 50, "r": 20, "t": 50, "b": 40})
    fig.update_yaxes(title_text=f"student {split} accuracy")
    return brand(fig)


def fidelity_html(fidelity: dict) -> str:
    """The boundary figures in words."""

    def pct(v):
        return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.0f}%"

    return (
        '<div class="cod-stats">'
        f'<div class="cod-stat"><b>{fidelity.get("probe_pairs", 0)}</b><span>held-out probe pairs</span></div>'
        f'<div class="cod-stat"><b>{pct(fidelity.get("flip_fidelity"))}</b>'
        "<span>flip fidelity (student flips as the teacher)</span></div>"
        f'<div class="cod-stat"><b>{pct(fidelity.get("edit_path_same_step"))}</b>'
        "<span>cross at the same edit step</span></div>"
        "</div>"
    )


def build(services, state):
    """The Compare tab."""
    with gr.Row():
        run = gr.Dropdown([], label="Student (a finished run of this project)", scale=3, elem_id="compare-run")
        n_pairs = gr.Slider(4, 64, value=12, step=4, label="Probe pairs (held out)", scale=2)
        go_btn = gr.Button("Compare", variant="primary", scale=1, elem_id="compare")
    note = gr.HTML(notice("Finish a distillation, then press <b>Compare</b>."), elem_id="compare-note")
    with gr.Row(equal_height=False):
        metrics = gr.Dataframe(
            label="Teacher vs student on held-out examples", interactive=False, elem_id="compare-metrics"
        )
        acc_plot = gr.Plot(label="Accuracy against k", elem_id="accuracy-vs-k")
    fidelity = gr.HTML(elem_id="fidelity")
    boundary_plot = gr.Plot(label="Boundary view", elem_id="boundary-view")
    with gr.Row():
        pair = gr.Slider(0, 63, value=0, step=1, label="Probe pair for the edit path", scale=1)
    path_plot = gr.Plot(label="Edit path", elem_id="edit-path")
    disagree = gr.Dataframe(
        label="Held-out examples where teacher and student disagree",
        interactive=False,
        wrap=True,
        max_height=360,
        elem_id="disagreements",
        datatype=["str", "str", "html", "html", "number"],
        column_widths=["58%", "10%", "13%", "13%", "6%"],
    )

    def refresh(s: PageState):
        choices = run_choices(services, s)
        value = s.run_key if s.run_key in [k for _, k in choices] else (choices[0][1] if choices else None)
        return gr.Dropdown(choices=choices, value=value)

    def on_compare(s: PageState, key, n):
        table, dis = metrics_and_disagreements(services, s, key)
        yield s, table, dis, accuracy_figure(services, s), gr.update(), gr.update(), notice("Scoring probe pairs…"), ""
        fig_map, fig_path, fid = boundary_figures(services, s, key, int(n))
        yield s, table, dis, gr.update(), fig_map, fig_path, "", fidelity_html(fid)

    def on_pair(s: PageState, key, n, p):
        if s.extra.get("probes") is None:
            return gr.update()
        return boundary_figures(services, s, key, int(n), int(p))[1]

    go_btn.click(
        ui_errors(on_compare),
        [state, run, n_pairs],
        [state, metrics, disagree, acc_plot, boundary_plot, path_plot, note, fidelity],
        api_name="compare",
    )
    pair.release(ui_errors(on_pair), [state, run, n_pairs, pair], path_plot, api_visibility="private")
    return SimpleNamespace(refresh=(ui_errors(refresh), [state], [run]), run=run)
