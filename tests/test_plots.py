import json

import numpy as np
import pandas as pd
import plotly.io as pio

from cod.eval.boundary import boundary_points, edit_path_table
from cod.eval.plots import accuracy_vs_k, boundary_view, cod_gain_vs_k, edit_path_plot, save_figure
from tests.test_boundary import PAIRS, count_scorer


def summary_table():
    rows = []
    for k in (8, 16, 32):
        for method, base in (("kd", 0.55), ("kd+cod", 0.60)):
            m = base + 0.01 * k / 8
            row = {
                "method": method,
                "k": k,
                "n_seeds": 3,
                "mean": m,
                "std": 0.02,
                "ci_low": m - 0.02,
                "ci_high": m + 0.02,
            }
            if method == "kd+cod":
                row.update(
                    baseline="kd", paired_diff=0.05, paired_ci_low=0.01, paired_ci_high=0.09, seeds_won=3, n_paired=3
                )
            else:
                row.update(
                    baseline=None,
                    paired_diff=np.nan,
                    paired_ci_low=np.nan,
                    paired_ci_high=np.nan,
                    seeds_won=np.nan,
                    n_paired=np.nan,
                )
            rows.append(row)
    return pd.DataFrame(rows)


def test_accuracy_vs_k_has_bands_lines_log_axis_and_teacher_line():
    fig = accuracy_vs_k(summary_table(), teacher_accuracy=0.85)
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert names == ["kd", "kd+cod"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 2 and len(bands[0].x) == 6  # 3 ks out and back
    assert fig.layout.xaxis.type == "log"
    assert any(s.y0 == 0.85 for s in fig.layout.shapes)


def test_cod_gain_vs_k_only_plots_paired_rows():
    fig = cod_gain_vs_k(summary_table())
    assert len(fig.data) == 1 and list(fig.data[0].y) == [0.05, 0.05, 0.05]
    assert list(fig.data[0].text) == ["3/3"] * 3
    assert list(fig.data[0].error_y.array) == [0.04] * 3 or np.allclose(fig.data[0].error_y.array, 0.04)


def test_boundary_view_and_edit_paths_render_and_save(tmp_path):
    embed = lambda texts: np.array([[len(t), t.count("good"), t.count("bad")] for t in texts], dtype=float)  # noqa: E731
    pts = boundary_points(
        PAIRS, count_scorer(2), count_scorer(4), embed=embed, projection="pca", label_names=["negative", "positive"]
    )
    fig = boundary_view(pts)
    # 2 panels x (originals, counterfactuals, disagreement rings); one arrow per pair per panel.
    assert len(fig.data) == 6 and len(fig.layout.annotations) >= 2 * len(PAIRS)
    rings = [t for t in fig.data if t.name == "teacher ≠ student"]
    assert len(rings[0].x) == 2
    assert "teacher P(positive)" in fig.data[0].text[0]
    paths = edit_path_table(PAIRS, count_scorer(2), count_scorer(3))
    fig2 = edit_path_plot(paths, pair_ids=[1])
    assert [t.name for t in fig2.data] == ["pair 1 teacher", "pair 1 student"]
    assert list(fig2.data[0].y) == [0.1, 0.1, 0.9, 0.9]
    html, js = save_figure(fig, tmp_path / "figs", "boundary")
    assert "<html>" in html.read_text()[:200] and len(html.read_text()) > 100_000  # plotly.js inlined: opens offline
    assert pio.from_json(js.read_text()).data[0].name == "original"
    assert json.loads(js.read_text())["layout"]["title"]["text"].startswith("Held-out")
