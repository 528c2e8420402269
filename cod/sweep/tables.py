"""A sweep folder's tables: results.csv (one row per cell), summary.csv (per method and k, paired statistics), the
summary figures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cod.config import SweepConfig
from cod.csvsafe import write_csv
from cod.eval.stats import paired_difference, summarise
from cod.sweep.grid import baseline_of, union_grid

# Per-cell metrics averaged into summary.csv beside the main metric.
_SECONDARY = (
    "student_macro_f1",
    "agreement",
    "mean_kl",
    "student_ece",
    "flip_fidelity",
    "edit_path_distance",
    "train_examples",
    "cf_flip_rate",
    "train_teacher_gold_conflict",
    "train_teacher_mean_p_last",
    "student_share_last",
    "wall_seconds",
)
SUMMARY_COLUMNS = [  # summary.csv's columns, in order (also an empty sweep's header)
    "method",
    "baseline",
    "k",
    "n_seeds",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "paired_diff",
    "paired_ci_low",
    "paired_ci_high",
    "seeds_won",
    "n_paired",
]


@dataclass
class SweepResult:
    """The tables a sweep wrote, and where."""

    results: pd.DataFrame
    summary: pd.DataFrame
    out_dir: Path
    teacher_accuracy: float | None = None


def summarise_results(
    results: pd.DataFrame,
    metric: str = "student_accuracy",
    confidence: float = 0.95,
    methods: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per method and k: n_seeds, mean, std, bootstrap interval of `metric`; for `+cod` methods the paired difference
    against the baseline over common seeds, its interval and the seeds won; and means of secondary metrics."""
    done = (
        results[results.get("status", pd.Series("done", index=results.index)) == "done"] if len(results) else results
    )
    if not len(done):
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    order = list(methods) if methods else list(dict.fromkeys(done["method"]))
    order += [m for m in dict.fromkeys(done["method"]) if m not in order]
    rows = []
    for method in order:
        for k in sorted(done.loc[done.method == method, "k"].unique()):
            rows.append(_summary_row(done, method, int(k), metric, confidence))
    return pd.DataFrame(rows)


def _summary_row(done: pd.DataFrame, method: str, k: int, metric: str, confidence: float) -> dict[str, Any]:
    cell = done[(done.method == method) & (done.k == k)]
    values = dict(zip(cell.seed.astype(int), cell[metric].astype(float)))
    row: dict[str, Any] = {"method": method, "baseline": baseline_of(method), "k": k, "metric": metric}
    row.update(summarise(list(values.values()), confidence=confidence).to_dict())
    base = baseline_of(method)
    base_cell = done[(done.method == base) & (done.k == k)] if base else done.iloc[0:0]
    if len(base_cell):
        paired = paired_difference(
            values, dict(zip(base_cell.seed.astype(int), base_cell[metric].astype(float))), confidence
        )
        row.update({key: value for key, value in paired.to_dict().items() if key != "seeds_tied"})
    else:
        row.update(
            paired_diff=np.nan,
            paired_ci_low=np.nan,
            paired_ci_high=np.nan,
            seeds_won=np.nan,
            seeds_lost=np.nan,
            n_paired=np.nan,
        )
    if "teacher_accuracy" in cell:
        row["teacher_accuracy"] = float(cell.teacher_accuracy.mean())
    for name in _SECONDARY:
        if name in cell and pd.api.types.is_numeric_dtype(cell[name]):
            row[f"mean_{name}"] = float(cell[name].mean())
    return row


def load_results(out: str | Path) -> pd.DataFrame:
    """One row per cell folder under `out/cells` (finished or failed), in grid order."""
    rows = []
    for path in sorted(Path(out).glob("cells/*/cell.json")):
        rows.append(json.loads(path.read_text())["row"])
    return pd.DataFrame(rows)


def write_tables(
    config: SweepConfig, out: Path, teacher_accuracy: float | None, figures: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Re)write results.csv and summary.csv from the cell folders of the folder's grid (and the summary figures)."""
    results = load_results(out)
    grid = union_grid(config, out)
    if len(results):
        cells = {(m, k, s) for m in grid["methods"] for k in grid["ks"] for s in grid["seeds"]}
        results = results[[(m, k, s) in cells for m, k, s in zip(results.method, results.k, results.seed)]]
        rank = {m: i for i, m in enumerate(grid["methods"])}
        results = results.sort_values(["k", "seed"], kind="stable").sort_values(
            "method", key=lambda s: s.map(rank), kind="stable"
        )
    summary = summarise_results(results, confidence=config.confidence, methods=grid["methods"])
    write_csv(results, out / "results.csv")  # formula-safe: cells can hold model names and error messages
    write_csv(summary, out / "summary.csv")
    if figures and config.figures and len(summary):
        from cod.eval.plots import accuracy_vs_k, cod_gain_vs_k, save_figure

        save_figure(
            accuracy_vs_k(summary, teacher_accuracy), out / "figures", "accuracy_vs_k", include_plotlyjs="directory"
        )
        if summary.paired_diff.notna().any():
            save_figure(cod_gain_vs_k(summary), out / "figures", "cod_gain", include_plotlyjs="directory")
    return results, summary


def finish(config: SweepConfig, out: Path, teacher_accuracy: float | None) -> SweepResult:
    """The final tables and figures of a (finished or stopped) sweep."""
    results, summary = write_tables(config, out, teacher_accuracy, figures=True)
    return SweepResult(results=results, summary=summary, out_dir=out, teacher_accuracy=teacher_accuracy)
