"""The same small sweep through both backends on this machine, and what Ray would give on N machines (on paper).

1. local: every cell one after another in this process (the default backend).
2. ray, one cell at a time (cpus_per_cell = all CPUs): the same work as local, through Ray tasks; the difference per
   cell is Ray's per-cell overhead (task dispatch, the shared state fetched once per worker, a fresh worker's imports).
3. ray, one cell per CPU (cpus_per_cell=1): cells in parallel on this machine.
Each run writes a fresh sweep folder; the shared work (teacher scores on test and validation, counterfactuals per draw)
runs once per sweep in the driver, before any cell. The expected speed-up on N machines comes from the measured
per-cell times: wall(N) ~ shared work + ceil(cells / (N * cells per machine)) * mean cell time + overhead per cell.

    nice -n 10 .venv/bin/python bench/bench_sweep_backends.py [--k 8] [--seeds 0,1] [--max-steps 10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(label: str, config, teacher, splits, backend) -> dict:
    """One sweep into a fresh folder: wall time, cells' own times, accuracies."""
    import pandas as pd

    from cod.sweep import sweep

    started = time.perf_counter()
    sweep(config, teacher=teacher, splits=splits, backend=backend)
    wall = time.perf_counter() - started
    results = pd.read_csv(Path(config.out) / "results.csv")
    cells = results.wall_seconds.astype(float)
    print(
        f"{label:<28} wall {wall:7.1f} s   cells {len(results)}   cell time mean {cells.mean():6.1f} s "
        f"(sum {cells.sum():6.1f} s)",
        flush=True,
    )
    return {
        "label": label,
        "wall": wall,
        "cell_mean": float(cells.mean()),
        "cell_sum": float(cells.sum()),
        "accuracy": results.set_index(["method", "k", "seed"]).student_accuracy.round(6).to_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", default="8")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--methods", default="kd,kd+cod")
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--test-limit", type=int, default=200)
    parser.add_argument("--teacher", default="demo", help="teacher name or path [demo]")
    parser.add_argument("--student", default="demo", help="student name or path [demo]")
    parser.add_argument(
        "--grid-cells", type=int, default=100, help="cells of the sweep to project (5 seeds x 4 k x 5 methods)"
    )
    args = parser.parse_args()

    import ray
    import torch

    from cod.config import SweepConfig
    from cod.data.tasks import load_task
    from cod.modeling.loading import load_teacher
    from cod.sweep import LocalBackend, RayBackend

    cpus = os.cpu_count() or 1
    torch.set_num_threads(cpus)
    splits, teacher = load_task("demo"), load_teacher(args.teacher)
    out = Path(tempfile.mkdtemp(prefix="cod-bench-sweep-"))
    distill = {"max_steps": args.max_steps, "evaluations": 1, "max_validation": 64}

    def config(name: str) -> SweepConfig:
        methods = tuple(args.methods.split(","))
        return SweepConfig(
            task="demo",
            teacher=args.teacher,
            student=args.student,
            ks=args.k,
            seeds=args.seeds,
            methods=methods,
            distill=distill,
            out=str(out / name),
            probe_pairs=0,
            figures=False,
            test_limit=args.test_limit,
        )

    print(
        f"{cpus} CPUs; teacher {args.teacher}, student {args.student}; "
        f"grid k={args.k} seeds={args.seeds} methods={args.methods}, max_steps {args.max_steps}, "
        f"test_limit {args.test_limit}; sweep folders under {out}",
        flush=True,
    )
    local = run("local", config("local"), teacher, splits, LocalBackend())
    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    ray_start = time.perf_counter() - started
    print(f"ray.init (a local Ray runtime)  {ray_start:.1f} s", flush=True)
    try:
        serial = run("ray, one cell at a time", config("ray-serial"), teacher, splits, RayBackend(cpus_per_cell=cpus))
        parallel = run(
            f"ray, {cpus} cells at a time", config("ray-parallel"), teacher, splits, RayBackend(cpus_per_cell=1)
        )
    finally:
        ray.shutdown()
    n = len(local["accuracy"])
    same = local["accuracy"] == serial["accuracy"] == parallel["accuracy"]
    overhead = (serial["wall"] - local["wall"]) / n
    shared = local["wall"] - local["cell_sum"]  # the driver's shared work and tables
    print(f"\nsame results.csv accuracies on all three runs: {same}")
    print(f"Ray overhead per cell (one at a time vs local): {overhead:+.1f} s; shared work: {shared:.1f} s")
    print(
        f"speed-up here with {cpus} cells at a time: {local['wall'] / parallel['wall']:.2f}x "
        f"(each cell {parallel['cell_mean'] / local['cell_mean']:.2f}x slower, sharing {cpus} cores)"
    )
    cell = local["cell_mean"] + max(overhead, 0.0)
    print(
        f"\nOn paper: the {args.grid_cells}-cell grid, one cell per machine at a time, {cell:.1f} s per cell "
        f"(measured cell time + Ray overhead), shared work {shared:.0f} s once:"
    )
    for machines in (1, 2, 4, 8, 16, 32):
        wall = shared + math.ceil(args.grid_cells / machines) * cell
        serial_wall = shared + args.grid_cells * local["cell_mean"]
        print(f"  {machines:>3} machine(s): {wall / 60:6.1f} min  (speed-up {serial_wall / wall:5.1f}x over local)")
    print(
        json.dumps(
            {
                "local": local["wall"],
                "ray_serial": serial["wall"],
                "ray_parallel": parallel["wall"],
                "ray_init": ray_start,
                "overhead_per_cell": overhead,
                "same": same,
            }
        )
    )


if __name__ == "__main__":
    main()
