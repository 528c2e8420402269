"""The control table of the reproduction: KD+CoD (this proposer) and the equal-budget augmentation control, each paired
against KD on the same draws, and the control against KD+CoD.

    python bench/reproduce/controls.py runs/reproduce            # a sweep folder (cells/*/cell.json)
    python bench/reproduce/controls.py bench/reproduce/controls.csv --kd bench/reproduce/results.csv

The KD rows come from the sweep folder's restored cells, or from `--kd` (the committed results.csv).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
METHODS = ("kd+cod", "kd+augment")


def read_rows(source: Path) -> pd.DataFrame:
    """Result rows from a sweep folder's cells or from a results CSV."""
    if source.is_dir():
        return pd.DataFrame([json.loads(p.read_text())["row"] for p in sorted(source.glob("cells/*/cell.json"))])
    return pd.read_csv(source)


def _paired(own: dict, base: dict) -> tuple[str, str]:
    from cod.eval.stats import paired_difference

    d = paired_difference(own, base)
    if not d.n:
        return "–", "–"
    return f"{d.diff:+.3f} [{d.ci_low:+.3f}, {d.ci_high:+.3f}]", f"{d.won} / {d.lost}"


def table(rows: pd.DataFrame, kd_rows: pd.DataFrame) -> str:
    """Markdown: per k and method, seeds, texts trained on, flip rate, accuracy, minus KD and minus KD+CoD (paired)."""
    from cod.eval.stats import summarise

    def by_seed(frame: pd.DataFrame, method: str, k: int) -> dict[int, float]:
        cells = frame[(frame.method == method) & (frame.k == k) & (frame.get("status", "done") == "done")]
        return dict(zip(cells.seed.astype(int), cells.student_accuracy))

    lines = [
        "| k | method | seeds | texts trained on | edits the teacher flips | test accuracy "
        "| minus KD, paired [95% CI] | better / worse than KD "
        "| minus KD+CoD, paired [95% CI] | better / worse than KD+CoD |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in sorted(rows[rows.method.isin(METHODS)].k.unique()):
        kd, cod = by_seed(kd_rows, "kd", k), by_seed(rows, "kd+cod", k)
        for method in METHODS:
            own = by_seed(rows, method, k)
            if not own:
                continue
            cells = rows[(rows.method == method) & (rows.k == k)]
            vs_kd, record_kd = _paired(own, kd)
            vs_cod, record_cod = ("–", "–") if method == "kd+cod" else _paired(own, cod)
            a = summarise(list(own.values()))
            lines.append(
                f"| {k} | {method} | {len(own)} | {cells.train_examples.mean():.1f} | {cells.cf_flip_rate.mean():.2f} "
                f"| {a.mean:.3f} ± {a.std:.3f} | {vs_kd} | {record_kd} | {vs_cod} | {record_cod} |"
            )
    return "\n".join(lines)


def main() -> None:
    """Command line: print the table; `--save CSV` writes the control rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a sweep folder or a results CSV")
    parser.add_argument("--kd", type=Path, default=None, help="where the KD rows are (default: the source)")
    parser.add_argument("--save", type=Path, default=None, help="write the KD+CoD and control rows to this CSV")
    args = parser.parse_args()
    rows = read_rows(args.source)
    if args.save:
        rows[rows.method.isin(METHODS)].sort_values(["k", "seed", "method"]).to_csv(args.save, index=False)
    print(table(rows, read_rows(args.kd) if args.kd else rows))


if __name__ == "__main__":
    main()
