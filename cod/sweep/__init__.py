"""Budget-matched sweeps: every method x k x seed on one task, resumable, summarised with paired statistics.

For each (k, seed) one seeded, class-balanced draw of k training examples is made; a baseline cell (kd, lwd, ce)
trains on all k, a `+cod` cell on the draw's first k/2 and their k/2 counterfactuals (made once per draw, cached).
Model selection uses the validation split inside `distill`; the test split is only evaluated, once per cell.
Cells run on a backend: here, one after another (`LocalBackend`), or as Ray tasks on a cluster (`RayBackend`).

Folder layout (`config.out`):
    sweep.json                    the settings (a resumed sweep must use the same ones), the grid, the last backend
    cells/<cell>/cell.json        one finished (or failed) cell: config, metrics, timings
    counterfactuals/k8-s0.jsonl   counterfactuals of each draw's real half (reused by every +cod cell of that draw)
    probes.jsonl                  held-out probe pairs (from test examples) for boundary fidelity
    teacher_test.npz              teacher probabilities on the test examples (computed once)
    results.csv, summary.csv      one row per cell; per method and k with intervals and paired differences
    figures/                      accuracy_vs_k, cod_gain, and per-cell boundary views / edit paths (HTML + JSON)

Modules: grid (cells, names, the folder's settings), cells (`run_cell`), backends (local, ray), run (`sweep`),
tables (results and summary), record (streaming rows into the project store).
"""

from cod.sweep.backends import Backend, LocalBackend, RayBackend
from cod.sweep.cells import CellOutcome, Draw, Shared, run_cell
from cod.sweep.grid import Cell, SweepEvent, baseline_of, cell_name, grid_cells, settings_key
from cod.sweep.run import sweep
from cod.sweep.tables import SweepResult, load_results, summarise_results

__all__ = [
    "Backend",
    "Cell",
    "CellOutcome",
    "Draw",
    "LocalBackend",
    "RayBackend",
    "Shared",
    "SweepEvent",
    "SweepResult",
    "baseline_of",
    "cell_name",
    "grid_cells",
    "load_results",
    "run_cell",
    "settings_key",
    "summarise_results",
    "sweep",
]
