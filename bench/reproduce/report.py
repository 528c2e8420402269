"""Turn a finished reproduction sweep into the committed summary: SUMMARY.md (our figures beside the paper's SST-2
ones), summary.csv, results.csv and the two figures (HTML loading plotly.js from its CDN to stay small, plus JSON).

    python bench/reproduce/report.py runs/reproduce --seconds 12345 --command "python -m cod sweep ..."
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run as a script from anywhere: `cod` is the repository's
# Hamman et al. (NeurIPS 2025), SST-2 accuracy of the KD student without and with CoD.
PAPER = {"kd": {8: 0.617, 16: 0.712, 32: 0.757, 64: 0.820}, "kd+cod": {8: 0.719, 16: 0.781, 32: 0.821, 64: 0.827}}
# The quick probes on this setup (teacher 0.85, MiniLM student, lr 6e-5, 75 epochs, batch 8), k = 8 / 16 / 32.
REFERENCE = {
    "KD, CLS head (5 seeds)": (0.534, 0.553, 0.578),
    "CoD, CLS head (5 seeds)": (0.453, 0.595, 0.673),
    "KD, mean-pooling head (3 seeds)": (0.567, 0.595, 0.642),
    "CoD, mean-pooling head (3 seeds)": (0.470, 0.634, 0.693),
    "SetFit, no teacher (3 seeds)": (0.609, 0.627, 0.677),
}


def _fmt(row: pd.Series | None) -> str:
    if row is None:
        return "–"
    return f"{row['mean']:.3f} ± {row['std']:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"


def _gain(row: pd.Series | None) -> str:
    if row is None or pd.isna(row.paired_diff):
        return "–"
    return (
        f"{row.paired_diff:+.3f} [{row.paired_ci_low:+.3f}, {row.paired_ci_high:+.3f}], "
        f"won {int(row.seeds_won)}/{int(row.n_paired)}"
    )


def _markdown(df: pd.DataFrame) -> str:
    rows = [" | ".join(df.columns), " | ".join("---" for _ in df.columns)]
    for values in df.itertuples(index=False):
        rows.append(" | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in values))
    return "\n".join(f"| {r} |" for r in rows)


def ablation_table(results: pd.DataFrame, ablation: pd.DataFrame) -> str:
    """One ablation sweep against the main one: per method and k, its accuracy and the paired change per seed."""
    from cod.eval.stats import paired_difference, summarise

    main = {(r.method, r.k, r.seed): r.student_accuracy for r in results.itertuples()}
    lines = [
        "| method | k | seeds | accuracy | main sweep, same cells | change, paired [95% CI] | seeds better |",
        "|---|---|---|---|---|---|---|",
    ]
    for (method, k), cells in ablation.groupby(["method", "k"], sort=True):
        own = dict(zip(cells.seed, cells.student_accuracy))
        base = {s: main[(method, k, s)] for s in own if (method, k, s) in main}
        a, b, d = summarise(list(own.values())), summarise(list(base.values())), paired_difference(own, base)
        base_text = f"{b.mean:.3f} ± {b.std:.3f}" if base else "–"
        change = f"{d.diff:+.3f} [{d.ci_low:+.3f}, {d.ci_high:+.3f}]" if d.n else "–"
        lines.append(
            f"| {method} | {k} | {len(own)} | {a.mean:.3f} ± {a.std:.3f} | {base_text} | {change} | {d.won}/{d.n} |"
        )
    return "\n".join(lines)


CONTROLS = ("kd+augment", "kd+cod-m1", "kd+cod-m2", "kd+cod-m4")


def _paired_cell(own: dict, base: dict) -> tuple[str, str]:
    """The paired difference `own - base` over the seeds both ran, with its interval, and seeds better / worse."""
    from cod.eval.stats import paired_difference

    d = paired_difference(own, base)
    if not d.n:
        return "–", "–"
    return f"{d.diff:+.3f} [{d.ci_low:+.3f}, {d.ci_high:+.3f}]", f"{d.won} / {d.lost}"


def controls_table(results: pd.DataFrame, kd_rows: pd.DataFrame | None = None) -> str:
    """CoD and its controls per k: labels used (k), texts trained on, edits the teacher flips, test accuracy, and each
    paired against KD (rows of `kd_rows`, default `results`) and the controls against KD+CoD (positive: better)."""
    from cod.eval.stats import summarise

    def by_seed(frame: pd.DataFrame, method: str, k: int) -> dict[int, float]:
        cells = frame[(frame.method == method) & (frame.k == k) & (frame.get("status", "done") == "done")]
        return dict(zip(cells.seed.astype(int), cells.student_accuracy))

    kd_rows = results if kd_rows is None else kd_rows
    methods = ("kd+cod", *CONTROLS)
    lines = [
        "| k | method | seeds | labels used | texts trained on | edits the teacher flips | test accuracy "
        "| minus KD, paired [95% CI] | better / worse than KD "
        "| minus KD+CoD, paired [95% CI] | better / worse than KD+CoD |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in sorted(results[results.method.isin(methods)].k.unique()):
        kd, cod = by_seed(kd_rows, "kd", k), by_seed(results, "kd+cod", k)
        for method in methods:
            own = by_seed(results, method, k)
            if not own:
                continue
            cells = results[(results.method == method) & (results.k == k)]
            texts = f"{cells.train_examples.mean():.1f}" if "train_examples" in cells else "–"
            flips = f"{cells.cf_flip_rate.mean():.2f}" if "cf_flip_rate" in cells else "–"
            vs_kd, record_kd = _paired_cell(own, kd)
            vs_cod, record_cod = ("–", "–") if method == "kd+cod" else _paired_cell(own, cod)
            a = summarise(list(own.values()))
            lines.append(
                f"| {k} | {method} | {len(own)} | {int(k)} | {texts} | {flips} | {a.mean:.3f} ± {a.std:.3f} "
                f"| {vs_kd} | {record_kd} | {vs_cod} | {record_cod} |"
            )
    return "\n".join(lines)


def write_report(
    sweep_dir: Path,
    seconds: float | None,
    command: str,
    dest: Path = HERE,
    note: str = "",
    ablations: dict[str, tuple[Path, str]] | None = None,
) -> Path:
    """Write SUMMARY.md and copy the tables and figures of `sweep_dir` into `dest`."""
    from cod.eval.plots import accuracy_vs_k, cod_gain_vs_k, save_figure

    summary = pd.read_csv(sweep_dir / "summary.csv")
    results = pd.read_csv(sweep_dir / "results.csv")
    teacher = float(results.teacher_accuracy.iloc[0]) if "teacher_accuracy" in results and len(results) else None
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(sweep_dir / "summary.csv", dest / "summary.csv")
    shutil.copy(sweep_dir / "results.csv", dest / "results.csv")
    save_figure(accuracy_vs_k(summary, teacher), dest, "accuracy_vs_k", include_plotlyjs="cdn")
    if summary.paired_diff.notna().any():
        save_figure(cod_gain_vs_k(summary), dest, "cod_gain", include_plotlyjs="cdn")

    def cell(method: str, k: int) -> pd.Series | None:
        rows = summary[(summary.method == method) & (summary.k == k)]
        return rows.iloc[0] if len(rows) else None

    settings = json.loads((sweep_dir / "sweep.json").read_text())["settings"]
    lines = [
        "# Reproduction on the embedded default (demo teacher -> demo student, demo task)",
        "",
        *([note, ""] if note else []),
        f"Command: `{command}`",
        "",
        f"Wall time of the last invocation: {seconds / 3600:.2f} h; "
        f"sum of cell times: {results.wall_seconds.sum() / 3600:.2f} h "
        f"({platform.machine()}, {platform.system()}). Teacher test accuracy: {teacher:.4f}. "
        f"Test examples evaluated: {int(results.n.iloc[0]) if 'n' in results else '?'}; cells: {len(results)}."
        if seconds is not None
        else "",
        "",
        f"Distill settings: `{json.dumps(settings.get('distill', {}))}` (others at DistillConfig defaults).",
        "",
        "Test accuracy: mean ± std [95% bootstrap interval] over seeds; "
        "gain: paired difference with its interval and seeds won.",
        "",
        "| k | KD | KD+CoD | CoD gain | paper KD | paper CoD | LWD | LWD+CoD | LWD CoD gain | CE | SetFit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in sorted(summary.k.unique()):
        lines.append(
            f"| {k} | {_fmt(cell('kd', k))} | {_fmt(cell('kd+cod', k))} | {_gain(cell('kd+cod', k))} | "
            f"{PAPER['kd'].get(k, '–')} | {PAPER['kd+cod'].get(k, '–')} | {_fmt(cell('lwd', k))} | "
            f"{_fmt(cell('lwd+cod', k))} | {_gain(cell('lwd+cod', k))} | "
            f"{_fmt(cell('ce', k))} | {_fmt(cell('setfit', k))} |"
        )
    if set(CONTROLS) & set(results.method):
        lines += [
            "",
            "## Controls: is the gain from the counterfactuals, or from more teacher-labelled text?",
            "",
            "`kd+augment`: k/2 real examples + one edit of each, the same size (words changed) as its CoD "
            "counterfactual, made by the same proposer machinery at random content words and not chosen to flip "
            "the teacher, labelled by the teacher as CoD's are (kept whether or not it flips). `kd+cod-mN`: all k "
            "real examples + N teacher-checked flips of each (sizes vary), beyond the paper's budget on purpose. "
            "Labels used: the budget k (CoD and augment: k/2 gold labels + k/2 edits labelled by the teacher; "
            "cod-mN: all k gold labels, its k x N flips labelled by the teacher on top); texts trained on: mean "
            "over seeds (unflipped CoD counterfactuals are dropped, so it can be below k).",
            "",
            controls_table(results),
        ]
    lines += [
        "",
        "The issue's reference probes on this setup (teacher 0.85, 75 epochs), k = 8 / 16 / 32:",
        "",
        "| reference | k = 8 | k = 16 | k = 32 |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {' | '.join(f'{v:.3f}' for v in values)} |" for name, values in REFERENCE.items()]
    diag = [
        c
        for c in (
            "mean_agreement",
            "mean_flip_fidelity",
            "mean_edit_path_distance",
            "mean_student_share_last",
            "mean_train_teacher_gold_conflict",
            "mean_train_teacher_mean_p_last",
            "mean_cf_flip_rate",
            "mean_train_examples",
        )
        if c in summary
    ]
    if diag:
        lines += ["", "Diagnostics (means over seeds):", "", _markdown(summary[["method", "k", *diag]])]
    for title, (path, ablation_command) in (ablations or {}).items():
        lines += [
            "",
            f"## Ablation: {title}",
            "",
            f"Command: `{ablation_command}`",
            "",
            ablation_table(results, pd.read_csv(path / "results.csv")),
        ]
    if (dest / "accuracy_vs_k.png").exists():  # screenshots of the same figures, taken outside this script
        lines += [
            "",
            "Figures: accuracy_vs_k.html / .json / .png, cod_gain.html / .json / .png (Plotly JSON loads with "
            "`plotly.io.from_json`; the PNGs are screenshots of the same figures).",
        ]
    else:
        lines += [
            "",
            "Figures: accuracy_vs_k.html / .json, cod_gain.html / .json "
            "(Plotly JSON loads with `plotly.io.from_json`).",
        ]
    path = dest / "SUMMARY.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    """Command line of the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--command", default="bench/reproduce/run.sh")
    parser.add_argument("--dest", type=Path, default=HERE)
    parser.add_argument("--note", default="", help="a paragraph put under the title (what this run is and is not)")
    parser.add_argument(
        "--ablation",
        nargs=3,
        action="append",
        default=[],
        metavar=("TITLE", "SWEEP_DIR", "COMMAND"),
        help="another sweep over some of the same cells, tabled against this one (repeatable)",
    )
    args = parser.parse_args()
    ablations = {title: (Path(path), command) for title, path, command in args.ablation}
    print(write_report(args.sweep_dir, args.seconds, args.command, args.dest, args.note, ablations))


if __name__ == "__main__":
    main()
