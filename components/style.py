"""Colours, theme and small HTML renderers shared by every tab: the teacher and student colours live here only."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"

# One colour per model everywhere (probability bars, charts, badges, legends).
TEACHER_COLOR = "#d9480f"  # burnt orange
STUDENT_COLOR = "#1c7ed6"  # blue
ADDED_COLOR = "#2f9e44"  # words a counterfactual adds
REMOVED_COLOR = "#e03131"  # words it removes
MUTED_COLOR = "#868e96"
# Loss parts and metrics on the Distill chart (validation accuracy is the student's, so it takes its colour).
SERIES_COLORS = {
    "loss": "#495057",
    "ce": "#845ef7",
    "kd": TEACHER_COLOR,
    "lwd": "#f59f00",
    "val_accuracy": STUDENT_COLOR,
}


def css() -> str:
    """The app's stylesheet: CSS variables from the colours above, then assets/style.css."""
    variables = (
        ":root {"
        f"--cod-teacher: {TEACHER_COLOR}; --cod-student: {STUDENT_COLOR};"
        f"--cod-added: {ADDED_COLOR}; --cod-removed: {REMOVED_COLOR}; --cod-muted: {MUTED_COLOR};"
        "}\n"
    )
    return variables + (ASSETS / "style.css").read_text(encoding="utf-8")


def theme():
    """A calm neutral theme so that the teacher and student colours stand out."""
    import gradio as gr

    base = gr.themes.Soft(primary_hue="slate", secondary_hue="slate", neutral_hue="slate", radius_size="md")
    return base.set(  # dark primary buttons: the slate default reads as disabled
        button_primary_background_fill="#1f2937",
        button_primary_background_fill_hover="#374151",
        button_primary_text_color="#ffffff",
        button_primary_background_fill_dark="#e5e7eb",
        button_primary_text_color_dark="#111827",
    )


def esc(text: object) -> str:
    """HTML-escape any value."""
    return html.escape(str(text), quote=True)


def probs_html(
    label_names: Sequence[str], probs: Sequence[float] | None, who: str = "teacher", title: str = ""
) -> str:
    """Horizontal probability bars in the model's colour; the argmax bar is solid, the others faded."""
    role = "student" if who == "student" else "teacher"
    if probs is None or len(probs) == 0:
        return f'<div class="cod-probs cod-{role} cod-empty">{esc(title or "")} –</div>'
    top = max(range(len(probs)), key=lambda i: probs[i])
    rows = []
    for i, (name, p) in enumerate(zip(label_names, probs)):
        cls = "cod-bar top" if i == top else "cod-bar"
        rows.append(
            f'<div class="cod-row"><span class="cod-name">{esc(name)}</span>'
            f'<span class="cod-track"><span class="{cls}" style="width:{100 * float(p):.1f}%"></span></span>'
            f'<span class="cod-p" data-p="{float(p):.4f}">{100 * float(p):.1f}%</span></div>'
        )
    head = f'<div class="cod-probs-title">{esc(title)}</div>' if title else ""
    return f'<div class="cod-probs cod-{role}" data-top="{esc(label_names[top])}">{head}{"".join(rows)}</div>'


def preview_title(title: str, precision: str) -> str:
    """A live card's title, saying when it is a bfloat16 preview (stored scores come from the float32 teacher)."""
    if precision == "bfloat16":
        return f"{title} · bfloat16 preview; saved scores are float32"
    return title


def badge(text: str, kind: str = "muted") -> str:
    """A small pill: kind is ok, bad, muted, teacher or student."""
    return f'<span class="cod-badge cod-badge-{kind}">{esc(text)}</span>'


def notice(text: str, kind: str = "info") -> str:
    """A one-line banner (info, warn, error) rendered as HTML."""
    return f'<div class="cod-notice cod-notice-{kind}">{text}</div>'


def diff_html(original: str, counterfactual: str) -> str:
    """The word-level edit as inline HTML: removed words struck through in red, added words in green."""
    from cod.counterfactuals.edits import diff, words

    a = words(original)
    out: list[str] = []
    pos = 0
    for e in diff(original, counterfactual):
        out.extend(esc(w) for w in a[pos : e.start])
        if e.old:
            out.append(f'<del class="cod-del">{esc(" ".join(e.old))}</del>')
        if e.new:
            out.append(f'<ins class="cod-ins">{esc(" ".join(e.new))}</ins>')
        pos = e.end
    out.extend(esc(w) for w in a[pos:])
    return f'<div class="cod-diff">{" ".join(out)}</div>'


STUDENT_SHADES = ["#1c7ed6", "#74c0fc", "#364fc7", "#15aabf", "#868e96", "#4dabf7"]  # several student methods


def brand(fig):
    """Recolour a library figure so the teacher is always orange and students are blue, whatever its palette."""
    methods: list[str] = []
    for trace in fig.data:
        name = (getattr(trace, "name", "") or "").lower()
        group = getattr(trace, "legendgroup", "") or ""
        colour = None
        if "teacher" in name and "student" not in name:
            colour = TEACHER_COLOR
        elif "student" in name and "teacher" not in name:
            colour = STUDENT_COLOR
        elif group and group not in ("original", "counterfactual", "disagree") and not group.startswith("pair"):
            if group not in methods:  # a student method of the accuracy-vs-k plot (its band shares the group)
                methods.append(group)
            i = methods.index(group)
            colour = STUDENT_COLOR if group == "kd+cod" else STUDENT_SHADES[1 + i % (len(STUDENT_SHADES) - 1)]
        if colour is not None:
            if getattr(trace, "line", None) is not None:
                trace.line.color = colour
            if getattr(trace, "marker", None) is not None and trace.marker.colorscale is None:
                trace.marker.color = colour
            if getattr(trace, "fill", None) == "toself":
                trace.fillcolor = _rgba(colour, 0.15)
    for shape in fig.layout.shapes or []:  # the teacher's accuracy line
        if shape.line and shape.line.dash == "dash":
            shape.line.color = TEACHER_COLOR
    for note in fig.layout.annotations or []:
        text = (note.text or "").lower()
        if text.startswith("teacher"):
            note.font.color = TEACHER_COLOR
        elif text.startswith("student"):
            note.font.color = STUDENT_COLOR
    return fig


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
