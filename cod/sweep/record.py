"""Stream a sweep's rows into the project store as its cells finish (the app's Compare tab reads them from there)."""

from __future__ import annotations

from typing import Any

from cod.config import SweepConfig
from cod.sweep.grid import SweepEvent


class StoreRecorder:
    """An `on_event` listener: records the sweep in `store` on its first row, then each finished or failed cell's row
    (cells done before and skipped on a resume too), so a sweep cut off half-way still shows what it finished."""

    def __init__(self, store: Any, config: SweepConfig, project: str | None = None, label: str = ""):
        self.store, self.config, self.project = store, config, project
        self.label = label or config.out
        self.sweep_id: int | None = None
        self.recorded: set[tuple[str, int, int]] = set()

    def __call__(self, event: SweepEvent) -> None:
        if event.kind in {"cell", "error", "skip"} and event.metrics:
            self.add([event.metrics])

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Record rows not recorded yet (one per cell)."""
        fresh = [r for r in rows if (r["method"], int(r["k"]), int(r["seed"])) not in self.recorded]
        if not fresh:
            return
        if self.sweep_id is None:
            self.sweep_id = self.store.add_sweep(self.project, self.config, label=self.label)
        self.store.add_sweep_results(self.sweep_id, fresh)
        self.recorded.update((r["method"], int(r["k"]), int(r["seed"])) for r in fresh)
