"""Rebuild a reproduction sweep folder from the committed results.csv, so methods added later run into it as new
cells beside the earlier ones (the sweep skips finished cells and tables the union grid). The sweep folder itself
(runs/, not committed) holds models' figures and caches; its rows are all the tables need.

    python bench/reproduce/restore.py runs/reproduce             # then: bench/reproduce/run.sh --methods kd+augment
    python bench/reproduce/restore.py runs/reproduce --results bench/reproduce/results.csv --set max_steps=100 ...

The settings default to the committed reproduction's (`--max-steps 100 --evaluations 5 --max-validation 200`); a
later `cod sweep` into the folder must use the same ones (it refuses otherwise).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
COMMITTED = {"max_steps": 100, "evaluations": 5, "max_validation": 200}


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def restore(results_csv: Path, out: Path, distill: dict) -> int:
    """Write cells/<cell>/cell.json for every row of `results_csv` and a sweep.json with their grid.

    Returns the count.
    """
    from cod.config import SweepConfig
    from cod.io import write_text
    from cod.sweep import cell_name, settings_key

    results = pd.read_csv(results_csv)
    methods = list(dict.fromkeys(results.method))
    config = SweepConfig(
        ks=tuple(sorted(int(k) for k in results.k.unique())),
        seeds=tuple(sorted(int(s) for s in results.seed.unique())),
        methods=tuple(methods),
        out=str(out),
        distill=distill,
    )
    written = 0
    for row in results.to_dict("records"):
        row = {key: _clean(value) for key, value in row.items()}
        cell = out / "cells" / cell_name(row["method"], int(row["k"]), int(row["seed"]))
        if (cell / "cell.json").exists():
            continue
        cell.mkdir(parents=True, exist_ok=True)
        payload = {
            "row": row,
            "distill_config": None,
            "sweep": settings_key(config),
            "restored_from": str(results_csv),
        }
        write_text(cell / "cell.json", json.dumps(payload, indent=2))
        written += 1
    grid = {"ks": list(config.ks), "seeds": list(config.seeds), "methods": methods}
    path = out / "sweep.json"
    if not path.exists():
        write_text(path, json.dumps({"settings": settings_key(config), "grid": grid}, indent=2))
    return written


def main() -> None:
    """Command line of the restore."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--results", type=Path, default=HERE / "results.csv")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a distill setting of the sweep (JSON value); default: the committed reproduction's",
    )
    args = parser.parse_args()
    distill = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)} if args.set else dict(COMMITTED)
    print(f"restored {restore(args.results, args.out, distill)} cells into {args.out}")


if __name__ == "__main__":
    main()
