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
sys.path.insert(0, str(HERE))

from report import CONTROLS, controls_table  # noqa: E402


def read_rows(source: Path) -> pd.DataFrame:
    """Result rows from a sweep folder's cells or from a results CSV."""
    if source.is_dir():
        return pd.DataFrame([json.loads(p.read_text())["row"] for p in sorted(source.glob("cells/*/cell.json"))])
    return pd.read_csv(source)


def main() -> None:
    """Command line: print the table; `--save CSV` writes the control rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a sweep folder or a results CSV")
    parser.add_argument("--kd", type=Path, default=None, help="where the KD rows are (default: the source)")
    parser.add_argument("--save", type=Path, default=None, help="write the KD+CoD and control rows to this CSV")
    args = parser.parse_args()
    rows = read_rows(args.source)
    if args.save:
        kept = rows[rows.method.isin(("kd+cod", *CONTROLS))]
        kept.sort_values(["k", "seed", "method"]).to_csv(args.save, index=False)
    print(controls_table(rows, read_rows(args.kd) if args.kd else None))


if __name__ == "__main__":
    main()
