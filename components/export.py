"""Export tab: download the curated pairs (JSONL, CSV) and the student (zip); push both to the Hub with a token."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from cod.errors import DistillError, StoreError
from cod.paths import safe_file_stem, unique_folder
from components.compare import run_choices
from components.services import shown_path, ui_errors
from components.state import PageState
from components.style import esc, notice


def export_pairs(services, state: PageState, which: str = "curated") -> tuple[Path, Path]:
    """Write the project's pairs (with provenance and history) as JSONL and CSV; returns both paths."""
    if not state.project:
        raise StoreError("Nothing to export yet: generate and curate counterfactuals first.")
    store = services.store()
    folder = unique_folder(services.artifacts_dir() / "exports", state.project)  # one per export, even concurrent
    stem = safe_file_stem(f"{state.project}-{which}")
    jsonl = store.export(state.project, folder / f"{stem}.jsonl", which=which)
    csv = store.export(state.project, folder / f"{stem}.csv", which=which)
    return jsonl, csv


def run_folder(services, key: str | None) -> Path:
    """The artifact folder of a finished run (where `model/` was saved)."""
    if not key:
        raise DistillError("No distilled student yet: run a distillation on the Distill tab first.")
    run = services.store().run(int(key))  # the visitor's own run, or an error
    result = services.results.get(str(key))
    folder = Path(result.out_dir) if result is not None and result.out_dir else None
    if folder is None:
        folder = Path(run.artifact_dir) if run.artifact_dir else None
    if folder is None or not (folder / "model" / "config.json").exists():
        raise DistillError(f"Run {key} has no saved student: pick a run that finished.")
    return folder


def zip_student(services, key: str | None) -> Path:
    """The run's student folder (weights, tokenizer, model card) as a zip."""
    folder = run_folder(services, key)
    target = unique_folder(services.artifacts_dir() / "exports", f"student-run{key}") / f"student-run{key}"
    return Path(shutil.make_archive(str(target), "zip", root_dir=folder / "model"))  # concurrent zips never collide


def push(
    services, state: PageState, key: str | None, dataset_repo: str, model_repo: str, token: str, private: bool
) -> str:
    """Push the pairs as a Hub dataset and/or the student as a Hub model; the token is used once and forgotten."""
    token = visitor_token(token)
    done = []
    if (dataset_repo or "").strip():
        if not state.project:
            raise StoreError("Nothing to push yet: generate and curate counterfactuals first.")
        from cod.store import push_to_hub as push_pairs

        done.append(
            push_pairs(services.store(), state.project, dataset_repo.strip(), token=token, private=bool(private))
        )
    if (model_repo or "").strip():
        from cod.distill.run_folder import push_to_hub as push_model

        done.append(push_model(run_folder(services, key), model_repo.strip(), private=bool(private), token=token))
    if not done:
        raise StoreError(
            "Give a dataset repo id (for the pairs) and/or a model repo id (for the student), e.g. you/my-cod-pairs."
        )
    return "Pushed: " + ", ".join(f'<a href="{esc(u)}" target="_blank">{esc(u)}</a>' for u in done)


def visitor_token(token: str | None) -> str | None:
    """The Hub token for a push: the one typed; in public mode never the owner's HF_TOKEN (None would read it)."""
    from cod.public import public_mode

    token = (token or "").strip() or None
    if token is None and public_mode():
        raise StoreError(
            "Pushing needs your own Hub token with write access: paste it in the token field "
            "(it is used for this push only, never stored)."
        )
    return token


def build(services, state):
    """The Export tab."""
    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown("### Download")
            which = gr.Radio(
                [("curated pairs (accepted or edited)", "curated"), ("every pair, with its status", "all")],
                value="curated",
                label="Pairs",
            )
            run = gr.Dropdown([], label="Student (a finished run)", elem_id="export-run")
            prepare = gr.Button("Prepare files", variant="primary", elem_id="prepare-export")
            with gr.Row():
                jsonl = gr.DownloadButton("Pairs · JSONL", interactive=False, elem_id="download-jsonl")
                csv = gr.DownloadButton("Pairs · CSV", interactive=False, elem_id="download-csv")
                model = gr.DownloadButton("Student · zip", interactive=False, elem_id="download-model")
            note = gr.HTML(elem_id="export-note")
        with gr.Column():
            gr.Markdown("### Push to the Hugging Face Hub")
            dataset_repo = gr.Textbox(label="Dataset repo id for the pairs", placeholder="you/my-cod-pairs")
            model_repo = gr.Textbox(label="Model repo id for the student", placeholder="you/my-cod-student")
            token = gr.Textbox(
                label="Hub token with write access (never stored or logged)", type="password", elem_id="hub-token"
            )
            private = gr.Checkbox(True, label="Private repos")
            push_btn = gr.Button("Push", elem_id="push")
            pushed = gr.HTML(elem_id="push-result")

    def on_prepare(s: PageState, w: str, key: str | None):
        pairs_jsonl, pairs_csv = export_pairs(services, s, w)
        messages = [f"Pairs written to {esc(shown_path(pairs_jsonl.parent))}"]
        try:
            student = gr.DownloadButton(value=str(zip_student(services, key)), interactive=True)
        except DistillError as err:
            student = gr.DownloadButton(value=None, interactive=False)
            messages.append(esc(str(err)))
        return (
            gr.DownloadButton(value=str(pairs_jsonl), interactive=True),
            gr.DownloadButton(value=str(pairs_csv), interactive=True),
            student,
            notice("<br>".join(messages)),
        )

    def refresh(s: PageState):
        choices = run_choices(services, s)
        value = s.run_key if s.run_key in [k for _, k in choices] else (choices[0][1] if choices else None)
        return gr.Dropdown(choices=choices, value=value)

    prepare.click(ui_errors(on_prepare), [state, which, run], [jsonl, csv, model, note], api_name="export")
    push_btn.click(
        ui_errors(lambda s, k, d, m, t, p: notice(push(services, s, k, d, m, t, p))),
        [state, run, dataset_repo, model_repo, token, private],
        pushed,
        api_visibility="private",
    )
    return SimpleNamespace(refresh=(ui_errors(refresh), [state], [run]), run=run)
