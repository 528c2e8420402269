"""Models tab: a teacher (classifier, causal LM such as demo-llm, or api:MODEL) and a student; label mapping; teacher
accuracy, kind, label mass, calibration and API spend; live prediction (API teachers wait for typing to pause)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd

from cod import DEMO
from cod.config import TEACHER_KINDS
from cod.errors import ModelError
from components.state import PageState
from components.style import badge, esc, notice, preview_title, probs_html

EVAL_LIMIT = 500  # validation examples scored for the teacher's accuracy (cached by text afterwards)
API_EVAL_LIMIT = 100  # fewer for an API teacher: each is a paid request (cached on disk afterwards)
API_DEBOUNCE_S = 0.8  # an API teacher waits this long per keystroke; with trigger_mode="always_last" the keystrokes
# typed meanwhile collapse into one request, so typing does not spend a request per character


# --- handlers ---------------------------------------------------------------------------------------------------
def predict_html(services, teacher_name: str, text: str) -> str:
    """The teacher's probabilities for typed text, as bars in the teacher's colour."""
    text = (text or "").strip()
    ready, message = services.teacher_status(teacher_name)
    if not ready:
        return notice(esc(message), "info")
    teacher = services.teacher(teacher_name)
    if not text:
        return probs_html(teacher.label_names, None, "teacher", "Teacher")
    if teacher.kind == "api":
        time.sleep(API_DEBOUNCE_S)
    start = time.perf_counter()
    probs = services.live_proba(teacher, text)
    title = preview_title("Teacher", services.live_precision(teacher))
    html = probs_html(teacher.label_names, probs.tolist(), "teacher", title)
    if teacher.kind == "api":
        info = teacher.info()
        mode = " · " + badge("votes", "muted") if info["mode"] == "votes" else ""
        html += (
            f'<div class="cod-muted" id="probe-latency">{esc(teacher.name)} answered in '
            f"{time.perf_counter() - start:.2f} s{mode} · {info['cost']['requests']} requests, "
            f"{info['cost']['tokens']:,} tokens so far</div>"
        )
    return html


def teacher_options(kind: str, calibrate: bool, label_words: str, base_url: str):
    """(kind, `LLMTeacherOptions`) from the LLM-teacher widgets; label words are `LABEL=word,word` per line."""
    from cod.modeling.teachers import APISettings, LLMTeacherOptions
    from cod.modeling.teachers.prompt import parse_label_words

    items = [line.strip() for line in (label_words or "").replace(";", "\n").splitlines() if line.strip()]
    api = APISettings(base_url=(base_url or "").strip() or None)
    return kind or "auto", LLMTeacherOptions.make(
        parse_label_words(items), api=api, calibrate=True if calibrate else None
    )


def teacher_details(info: dict) -> list[str]:
    """Lines on an LLM teacher: kind, label mass, calibration, and for APIs the mode and what was spent."""
    kind = info.get("kind", "classifier")
    lines = [f"Kind <b>{esc(kind)}</b>"]
    if kind == "classifier":
        return lines
    mass = info.get("mean_label_mass")
    if mass is not None:
        low = badge("low: mostly other words; set label words", "muted") if info.get("low_label_mass") else ""
        lines.append(f"Label mass <b>{mass:.1%}</b> (share of the answer that named a label) {low}")
    calibration = "on" if info.get("calibrated") else "off"
    if info.get("content_free_probs"):
        calibration += f" (content-free: {', '.join(f'{p:.2f}' for p in info['content_free_probs'])})"
    words = "; ".join(f"{k}: {', '.join(v)}" for k, v in info["prompt"]["label_words"].items())
    lines.append(f"Calibration <b>{esc(calibration)}</b> · label words {esc(words)}")
    if kind == "api":
        mode = info.get("mode", "logprobs")
        if mode == "votes":
            mode = f"votes ({info.get('samples')} sampled answers per text; the model refused logprobs)"
        cost, budget = info["cost"], info["budget"]
        latency = f" · {info['mean_latency_s']:.2f} s per request" if info.get("mean_latency_s") is not None else ""
        lines.append(f"Scored by <b>{esc(mode)}</b> at {esc(info.get('endpoint', ''))}")
        lines.append(
            f"Spent <b>{cost['requests']}</b> requests, <b>{cost['tokens']:,}</b> tokens (budget "
            f"{budget['max_requests'] or '∞'} / {budget['max_tokens'] or '∞'}); {cost['cache_hits']} texts "
            f"from the cache{latency}"
        )
    return lines


def label_mapping(model_labels: list[str], data_labels: list[str]) -> pd.DataFrame:
    """Index-by-index mapping of the model's labels to the data's, with a match column."""
    n = max(len(model_labels), len(data_labels))
    rows = []
    for i in range(n):
        m = model_labels[i] if i < len(model_labels) else "—"
        d = data_labels[i] if i < len(data_labels) else "—"
        rows.append({"index": i, "model label": m, "data label": d, "match": "✓" if m.lower() == d.lower() else "≠"})
    return pd.DataFrame(rows)


def check_teacher(
    services,
    state: PageState,
    name: str,
    kind: str = "auto",
    calibrate: bool = False,
    label_words: str = "",
    base_url: str = "",
) -> tuple[PageState, str, pd.DataFrame]:
    """Load the teacher, check its labels against the data's, and score it on the validation split."""
    name = (name or DEMO).strip()
    kind, options = teacher_options(kind, calibrate, label_words, base_url)
    labels = list(state.label_names) or None  # an LLM teacher answers with the data's labels
    teacher = services.teacher(name, kind=kind, label_names=labels, options=options)
    state.teacher = name
    mapping = label_mapping(teacher.label_names, state.label_names)
    lines = [
        f"{badge('teacher', 'teacher')} "
        f"<b>{esc(teacher.name if name != DEMO else 'demo (all-mpnet-base-v2 + trained head)')}</b>"
        f" · {teacher.num_labels} labels: {esc(', '.join(teacher.label_names))}"
    ]
    if state.label_names:
        if teacher.num_labels != len(state.label_names):
            raise ModelError(
                f"The teacher has {teacher.num_labels} labels {teacher.label_names} but the data has "
                f"{len(state.label_names)} {state.label_names}: choose a matching teacher or map the labels."
            )
        from cod.modeling.loading import check_labels

        check_labels(teacher.label_names, state.label_names)
    accuracy = teacher_accuracy(services, state, name)
    if accuracy is not None:
        lines.append(f"Validation accuracy <b>{accuracy:.1%}</b> on {len(eval_examples(state, teacher)):,} examples")
    lines += teacher_details(teacher.info())
    if name == DEMO:
        metrics = demo_metrics()
        if "test_accuracy" in metrics:
            lines.append(f"Held-out test accuracy (from the build) <b>{float(metrics['test_accuracy']):.1%}</b>")
    return state, "<br>".join(lines), mapping


def eval_examples(state: PageState, teacher) -> list:
    """The validation examples the teacher's accuracy is measured on (fewer for API teachers)."""
    return state.validation[: API_EVAL_LIMIT if teacher.kind == "api" else EVAL_LIMIT]


def teacher_accuracy(services, state: PageState, name: str) -> float | None:
    """Accuracy of the teacher on (the first examples of) the validation split; None without labelled validation."""
    if not state.validation:
        return None
    teacher = services.teacher(name)
    examples = eval_examples(state, teacher)
    preds = teacher.predict([e.text for e in examples])
    return float(np.mean(preds == np.array([e.label for e in examples])))


def demo_metrics() -> dict:
    """The demo teacher's saved metrics (validation/test accuracy), empty if not built."""
    from components.services import demo_teacher_dir

    path = demo_teacher_dir() / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def teacher_hint(services) -> str:
    """What the teacher panel says before "Load teacher" is pressed (the demo's saved accuracy when built)."""
    lines = [
        '<span class="cod-muted">Press <b>Load teacher</b> to check its labels against the data and score it '
        "on the validation split.</span>"
    ]
    if services.default_teacher == DEMO:
        metrics = demo_metrics()
        if "test_accuracy" in metrics:
            lines.insert(
                0,
                f"{badge('teacher', 'teacher')} demo: all-mpnet-base-v2 with a head trained on the demo task · "
                f"test accuracy <b>{float(metrics['test_accuracy']):.1%}</b>",
            )
    return "<br>".join(lines)


def check_student(state: PageState, name: str) -> tuple[PageState, str]:
    """Remember the student name; its head is created fresh with the data's labels when distillation starts."""
    name = (name or DEMO).strip()
    state.student = name
    desc = "demo (all-MiniLM-L6-v2, 22.7M parameters, fresh head)" if name == DEMO else name
    labels = ", ".join(state.label_names) or "the data's labels"
    return state, f"{badge('student', 'student')} <b>{esc(desc)}</b> · a fresh classification head for {esc(labels)}"


# --- layout -----------------------------------------------------------------------------------------------------
def build(services, state, live_key=None):
    """The Models tab; returns the components other tabs listen to. `live_key`: the page's key for the live route
    (`components.live_route`; None keeps typing on a Gradio event)."""
    import gradio as gr

    from components import live_route
    from components.services import gpu, ui_errors

    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            gr.Markdown("### Teacher")
            teacher = gr.Textbox(
                services.default_teacher,
                label="Hub id, local path, demo, demo-llm, or api:MODEL",
                elem_id="teacher-name",
            )
            with gr.Accordion("LLM teacher settings", open=False, elem_id="llm-teacher-settings"):
                kind = gr.Dropdown(
                    list(TEACHER_KINDS), value="auto", label="Kind (auto: from the name)", elem_id="teacher-kind"
                )
                label_words = gr.Textbox(
                    "",
                    label="Label words, one LABEL=word,word per line (default: the label names)",
                    lines=2,
                    elem_id="label-words",
                )
                calibrate = gr.Checkbox(
                    False,
                    label="Contextual calibration (content-free inputs; unticked: off or demo-llm's validated choice)",
                    elem_id="calibrate",
                )
                base_url = gr.Textbox(
                    "",
                    label="Endpoint for api:MODEL (empty: COD_LLM_BASE_URL or OpenAI; the key comes from the "
                    "server's environment)",
                    elem_id="teacher-base-url",
                )
            load_teacher = gr.Button("Load teacher", variant="primary", elem_id="load-teacher")
            teacher_info = gr.HTML(teacher_hint(services), elem_id="teacher-info")
            mapping = gr.Dataframe(
                pd.DataFrame(columns=["index", "model label", "data label", "match"]),
                label="Label mapping",
                interactive=False,
                elem_id="label-mapping",
            )
            gr.Markdown("### Student")
            student = gr.Textbox(services.default_student, label="Hub id, local path, or demo", elem_id="student-name")
            student_info = gr.HTML(elem_id="student-info")
        with gr.Column(scale=1, min_width=300):
            gr.Markdown("### Try the teacher")
            probe = gr.Textbox(
                "a gorgeous, witty, seductive movie .",
                label="Type any text",
                lines=3,
                elem_id="probe",
            )
            probe_out = gr.HTML(elem_id="probe-probs")

    live = ui_errors(gpu(lambda name, text: predict_html(services, name, text), duration=10))
    live_route.wire(
        probe,
        probe_out,
        key=live_key,
        kind="predict",
        fields={"teacher": teacher, "text": probe},
        gradio_fn=live,
        gradio_inputs=[teacher, probe],
        api_name="predict",
    )
    load_teacher.click(
        ui_errors(lambda s, n, k, c, w, u: check_teacher(services, s, n, k, c, w, u)),
        [state, teacher, kind, calibrate, label_words, base_url],
        [state, teacher_info, mapping],
        api_name="check_teacher",
    )
    student.change(ui_errors(check_student), [state, student], [state, student_info], api_visibility="private")
    return SimpleNamespace(
        teacher=teacher,
        student=student,
        probe=probe,
        probe_out=probe_out,
        teacher_info=teacher_info,
        student_info=student_info,
        live=live,
    )
