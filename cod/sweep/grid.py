"""The grid of a sweep: its cells, their names, the folder's settings and which cells are finished."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cod.config import SweepConfig, method_scheme
from cod.errors import ConfigError
from cod.io import write_json

# Settings that may change between a sweep and its resumption (they only add or drop cells or figures).
_GRID_KEYS = {"ks", "seeds", "methods", "out", "figures"}


@dataclass
class SweepEvent:
    """Progress of a sweep: kind is start | cell | skip | error | warning | done | stopped."""

    kind: str
    done: int
    total: int
    cell: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class Cell:
    """One method at one budget k and seed."""

    method: str
    k: int
    seed: int

    @property
    def name(self) -> str:
        """Folder name, e.g. `kd_cod-k8-s0`."""
        return cell_name(self.method, self.k, self.seed)

    @property
    def draw_key(self) -> str:
        """The (k, seed) draw this cell trains on, e.g. `k8-s0`: cells of one draw share its counterfactuals."""
        return f"k{self.k}-s{self.seed}"

    @property
    def scheme(self) -> str:
        """How the cell uses counterfactuals: '' (none), cod, augment (the control) or cod-m (m per example)."""
        return method_scheme(self.method)[1]

    @property
    def cod(self) -> bool:
        """The cell trains on edited texts besides real ones (cod, augment or cod-m)."""
        return bool(self.scheme)


def baseline_of(method: str) -> str | None:
    """The baseline of a method: `kd+cod`, `kd+augment`, `kd+cod-m2` -> `kd`; baselines themselves have none."""
    base, scheme, _ = method_scheme(method)
    return base if scheme else None


def cell_name(method: str, k: int, seed: int) -> str:
    """Folder name of one cell, e.g. `kd_cod-k8-s0`."""
    return f"{method.replace('+', '_')}-k{k}-s{seed}"


def grid_cells(config: SweepConfig) -> list[Cell]:
    """The cells of `config` in run order: k, then seed, then method."""
    return [Cell(method, k, seed) for k in config.ks for seed in config.seeds for method in config.methods]


def settings_key(config: SweepConfig) -> dict[str, Any]:
    """The settings every cell of a sweep must share (everything but the grid itself)."""
    settings = {key: value for key, value in config.to_dict().items() if key not in _GRID_KEYS}
    if not settings.get("guide_teacher"):  # folders made before the setting existed resume unguided
        settings.pop("guide_teacher", None)
    return settings


def check_resumable(config: SweepConfig, out: Path, backend: dict[str, Any] | None = None) -> None:
    """Refuse a folder made with other settings; otherwise (re)write its sweep.json with the union grid."""
    path = out / "sweep.json"
    mine = settings_key(config)
    before = json.loads(path.read_text()) if path.exists() else {}
    if before:
        theirs = before.get("settings", {})
        changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if changed:
            diff = ", ".join(f"{k}: {theirs.get(k)!r} -> {mine.get(k)!r}" for k in changed)
            raise ConfigError(
                f"{out} holds a sweep made with other settings ({diff}): "
                "use a new --out folder, or the same settings to resume it."
            )
    record = {"settings": mine, "grid": union_grid(config, out)}
    if backend:  # how the latest invocation ran (it does not change the results, so a resume may use another)
        record["backend"] = backend
    write_json(path, record, sort_keys=False)


def union_grid(config: SweepConfig, out: Path) -> dict[str, list]:
    """Every k, seed and method run in this folder so far (earlier invocations first, then this one's new values):
    adding a method or a seed to a finished sweep keeps the finished cells in its tables."""
    path = out / "sweep.json"
    before = json.loads(path.read_text()).get("grid", {}) if path.exists() else {}
    grid = {}
    for key in ("ks", "seeds", "methods"):
        values = list(before.get(key, []))
        values += [v for v in getattr(config, key) if v not in values]
        grid[key] = sorted(values) if key != "methods" else values
    return grid


def cell_record(out: Path, cell: Cell) -> dict[str, Any] | None:
    """The cell.json of a cell run before (finished or failed), or None."""
    path = out / "cells" / cell.name / "cell.json"
    return json.loads(path.read_text()) if path.exists() else None


def finished(out: Path, cell: Cell) -> bool:
    """Whether the cell ran to the end before (a failed cell runs again)."""
    record = cell_record(out, cell)
    return record is not None and record["row"].get("status") == "done"
