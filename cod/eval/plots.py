"""Tables in, Plotly figures out: accuracy against k, paired CoD gain, the boundary view, edit paths.

Usable from a notebook (`fig.show()`) without the app; `save_figure` writes HTML and Plotly JSON side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = {
    "kd": "#1f77b4",
    "kd+cod": "#d62728",
    "lwd": "#2ca02c",
    "lwd+cod": "#ff7f0e",
    "ce": "#7f7f7f",
    "setfit": "#9467bd",
}
EXTRA = ["#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def _colour(method: str, i: int) -> str:
    return PALETTE.get(method, EXTRA[i % len(EXTRA)])


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def accuracy_vs_k(summary: pd.DataFrame, teacher_accuracy: float | None = None, title: str = "") -> go.Figure:
    """Mean accuracy against k (log axis) per method, with bootstrap-interval bands and the teacher's line.

    `summary` has columns method, k, mean, ci_low, ci_high (and n_seeds for hover)."""
    fig = go.Figure()
    ks = sorted(summary["k"].unique())
    for i, (method, g) in enumerate(summary.groupby("method", sort=False)):
        g = g.sort_values("k")
        colour = _colour(str(method), i)
        fig.add_trace(
            go.Scatter(
                x=list(g.k) + list(g.k[::-1]),
                y=list(g.ci_high) + list(g.ci_low[::-1]),
                fill="toself",
                fillcolor=_rgba(colour, 0.15),
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                legendgroup=str(method),
            )
        )
        n = g["n_seeds"] if "n_seeds" in g else [None] * len(g)
        fig.add_trace(
            go.Scatter(
                x=g.k,
                y=g["mean"],
                mode="lines+markers",
                name=str(method),
                legendgroup=str(method),
                line={"color": colour, "dash": "solid" if "+cod" in str(method) else "dot"},
                customdata=list(zip(g.ci_low, g.ci_high, n)),
                hovertemplate=f"{method}<br>k=%{{x}}<br>mean %{{y:.3f}}<br>95%% CI [%{{customdata[0]:.3f}}, "
                "%{customdata[1]:.3f}]<br>seeds %{customdata[2]}<extra></extra>",
            )
        )
    if teacher_accuracy is not None:
        fig.add_hline(
            y=teacher_accuracy,
            line={"color": "black", "dash": "dash"},
            annotation_text=f"teacher {teacher_accuracy:.3f}",
            annotation_position="bottom right",
        )
    fig.update_xaxes(type="log", tickvals=ks, ticktext=[str(k) for k in ks], title="k (examples per run, log scale)")
    fig.update_yaxes(title="test accuracy")
    fig.update_layout(title=title or "Student accuracy against the example budget k", template="plotly_white")
    return fig


def cod_gain_vs_k(summary: pd.DataFrame, title: str = "") -> go.Figure:
    """Paired gain of each `+cod` method over its baseline against k, with paired intervals and seeds won."""
    rows = summary.dropna(subset=["paired_diff"]) if "paired_diff" in summary else summary.iloc[0:0]
    fig = go.Figure()
    ks = sorted(summary["k"].unique()) if len(summary) else []
    for i, (method, g) in enumerate(rows.groupby("method", sort=False)):
        g = g.sort_values("k")
        colour = _colour(str(method), i)
        n = g["n_paired"] if "n_paired" in g else g.get("n_seeds", pd.Series([None] * len(g)))
        fig.add_trace(
            go.Scatter(
                x=g.k,
                y=g.paired_diff,
                mode="lines+markers+text",
                name=f"{method} − {g['baseline'].iloc[0]}" if "baseline" in g else str(method),
                line={"color": colour},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": g.paired_ci_high - g.paired_diff,
                    "arrayminus": g.paired_diff - g.paired_ci_low,
                },
                text=[f"{int(w)}/{int(m)}" if pd.notna(m) else "" for w, m in zip(g.seeds_won, n)],
                textposition="top center",
                hovertemplate=f"{method}<br>k=%{{x}}<br>gain %{{y:+.3f}}<br>seeds won %{{text}}<extra></extra>",
            )
        )
    fig.add_hline(y=0, line={"color": "black", "width": 1})
    fig.update_xaxes(type="log", tickvals=ks, ticktext=[str(k) for k in ks], title="k (log scale)")
    fig.update_yaxes(title="paired accuracy gain (CoD − baseline)")
    fig.update_layout(
        title=title or "CoD gain over its baseline, paired by seed (labels: seeds won)", template="plotly_white"
    )
    return fig


def boundary_view(points: pd.DataFrame, title: str = "", arrows: bool = True) -> go.Figure:
    """Teacher and student side by side on the same 2-D map: colour = probability of the class in
    `points.attrs['class_name']`, circles = originals, diamonds = counterfactuals, arrows original -> counterfactual,
    rings = the two models disagree; hover shows the text and both probabilities."""
    cls = points.attrs.get("class_name", "class 1")
    projection = points.attrs.get("projection", "pca").upper()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Teacher", "Student"), shared_xaxes=True, shared_yaxes=True)
    hover = [
        f"{k}: {t[:140]}<br>teacher P({cls}) {tp:.2f} · student P({cls}) {sp:.2f}"
        for k, t, tp, sp in zip(points.kind, points.text, points.teacher_p, points.student_p)
    ]
    points = points.assign(hover=hover)
    for col, who in ((1, "teacher"), (2, "student")):
        for kind, symbol in (("original", "circle"), ("counterfactual", "diamond")):
            g = points[points.kind == kind]
            fig.add_trace(
                go.Scatter(
                    x=g.x,
                    y=g.y,
                    mode="markers",
                    name=kind,
                    legendgroup=kind,
                    showlegend=col == 1,
                    marker={
                        "symbol": symbol,
                        "size": 10,
                        "color": g[f"{who}_p"],
                        "colorscale": "RdBu",
                        "cmin": 0,
                        "cmax": 1,
                        "line": {"width": 0.5, "color": "#333"},
                        "colorbar": {"title": f"P({cls})", "x": 1.02} if col == 2 and kind == "original" else None,
                        "showscale": col == 2 and kind == "original",
                    },
                    text=g.hover,
                    hoverinfo="text",
                ),
                row=1,
                col=col,
            )
        d = points[points.disagree]
        fig.add_trace(
            go.Scatter(
                x=d.x,
                y=d.y,
                mode="markers",
                name="teacher ≠ student",
                legendgroup="disagree",
                showlegend=col == 1,
                marker={"symbol": "circle-open", "size": 18, "color": "black", "line": {"width": 2}},
                text=d.hover,
                hoverinfo="text",
            ),
            row=1,
            col=col,
        )
        if arrows:
            orig = points[points.kind == "original"].set_index("pair_id")
            cf = points[points.kind == "counterfactual"].set_index("pair_id")
            for pid in orig.index.intersection(cf.index):
                fig.add_annotation(
                    x=cf.at[pid, "x"],
                    y=cf.at[pid, "y"],
                    ax=orig.at[pid, "x"],
                    ay=orig.at[pid, "y"],
                    xref=f"x{col if col > 1 else ''}",
                    yref=f"y{col if col > 1 else ''}",
                    axref=f"x{col if col > 1 else ''}",
                    ayref=f"y{col if col > 1 else ''}",
                    showarrow=True,
                    arrowhead=2,
                    arrowsize=1,
                    arrowwidth=1,
                    arrowcolor="rgba(80,80,80,0.5)",
                    text="",
                )
    fig.update_layout(
        title=title or f"Held-out originals and counterfactuals on the teacher's embeddings ({projection})",
        template="plotly_white",
        legend={"orientation": "h", "y": -0.12},
    )
    return fig


def edit_path_plot(
    path: pd.DataFrame, pair_ids: Sequence[int] | None = None, max_pairs: int = 8, title: str = ""
) -> go.Figure:
    """Teacher (solid) and student (dashed) probability of the target class at each edit step, for chosen pairs."""
    ids = list(pair_ids) if pair_ids is not None else sorted(path.pair_id.unique())[:max_pairs]
    fig = go.Figure()
    for i, pid in enumerate(ids):
        g = path[path.pair_id == pid].sort_values("step")
        colour = EXTRA[i % len(EXTRA)] if i >= len(PALETTE) else list(PALETTE.values())[i]
        for who, dash in (("teacher", "solid"), ("student", "dash")):
            fig.add_trace(
                go.Scatter(
                    x=g.step,
                    y=g[f"{who}_p_target"],
                    mode="lines+markers",
                    name=f"pair {pid} {who}",
                    legendgroup=f"pair {pid}",
                    line={"color": colour, "dash": dash},
                    text=[t[:140] for t in g.text],
                    hovertemplate=f"pair {pid} {who}<br>step %{{x}}: P(target) %{{y:.2f}}<br>%{{text}}<extra></extra>",
                )
            )
    fig.add_hline(y=0.5, line={"color": "black", "width": 1, "dash": "dot"})
    fig.update_xaxes(title="edit step (0 = original)", dtick=1)
    fig.update_yaxes(title="P(target class)", range=[0, 1])
    fig.update_layout(title=title or "Edit paths: where teacher and student cross", template="plotly_white")
    return fig


def save_figure(
    fig: go.Figure, folder: str | Path, name: str, include_plotlyjs: bool | str = True
) -> tuple[Path, Path]:
    """Write `name.html` (self-contained unless include_plotlyjs='cdn') and `name.json` (Plotly JSON) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    html, js = folder / f"{name}.html", folder / f"{name}.json"
    fig.write_html(html, include_plotlyjs=include_plotlyjs)
    js.write_text(fig.to_json())
    return html, js
