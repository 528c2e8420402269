"""Backends run a sweep's cells: `LocalBackend` one after another in this process, `RayBackend` as Ray tasks.

Both call `run_cell(cell, shared)` and yield `(cell, outcome)` as cells finish, in any order; the sweep records each
one as it comes. A cell that raises (anything but a `CodError`, which is a failed cell already) is retried once and
then recorded as failed, so one bad cell never loses the others. `outcome` None means `stop` ended the cell's run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any, Protocol

from cod.errors import ConfigError
from cod.sweep.cells import CellOutcome, Shared, _stopped, failed_outcome, run_cell
from cod.sweep.grid import Cell

log = logging.getLogger(__name__)

ATTEMPTS = 2  # a cell that raises runs once more before it is recorded as failed


class Backend(Protocol):
    """Runs cells and yields (cell, outcome) as they finish."""

    def run(
        self, cells: list[Cell], shared: Shared, stop: Any = None
    ) -> Iterator[tuple[Cell, CellOutcome | None]]: ...

    def describe(self) -> dict[str, Any]: ...


class LocalBackend:
    """Every cell in this process, in grid order (the default)."""

    def describe(self) -> dict[str, Any]:
        """How this backend runs (saved in sweep.json)."""
        return {"name": "local"}

    def run(self, cells: list[Cell], shared: Shared, stop: Any = None) -> Iterator[tuple[Cell, CellOutcome | None]]:
        """Run the cells one by one; stop before the next cell (or inside one) when `stop` is set."""
        for cell in cells:
            if _stopped(stop):
                return
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    outcome = run_cell(cell, shared, stop=stop)
                    break
                except Exception as err:  # noqa: BLE001 - any failure of one cell must not end the sweep
                    log.exception("cell %s raised (attempt %d of %d)", cell.name, attempt, ATTEMPTS)
                    outcome = failed_outcome(cell, _attempts_message(err))
            yield cell, outcome
            if outcome is None:
                return


class RayBackend:
    """Each cell a Ray task with `cpus_per_cell` CPUs and `gpus_per_cell` GPUs, on the cluster at `address`
    ("auto": the one running on this machine; "ray://HOST:10001": a remote head through Ray Client), or on a Ray
    runtime started here when `address` is None. What the cells share goes through Ray's object store once."""

    def __init__(
        self,
        address: str | None = None,
        cpus_per_cell: float = 1,
        gpus_per_cell: float = 0,
        num_cpus: int | None = None,
        object_store_memory: int | None = None,
    ):
        if cpus_per_cell <= 0 or gpus_per_cell < 0:
            raise ConfigError(
                f"cpus_per_cell must be above 0 and gpus_per_cell 0 or more, got {cpus_per_cell} and {gpus_per_cell}."
            )
        self.address = address
        self.cpus_per_cell = cpus_per_cell
        self.gpus_per_cell = gpus_per_cell
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory

    def describe(self) -> dict[str, Any]:
        """How this backend runs (saved in sweep.json)."""
        return {
            "name": "ray",
            "address": self.address,
            "cpus_per_cell": self.cpus_per_cell,
            "gpus_per_cell": self.gpus_per_cell,
        }

    def run(self, cells: list[Cell], shared: Shared, stop: Any = None) -> Iterator[tuple[Cell, CellOutcome | None]]:
        """Submit every cell, yield each as it finishes; on `stop`, cancel the rest (they run again on resume)."""
        ray = _import_ray()
        started_here = self._connect(ray)
        try:
            shared_ref = ray.put(shared)  # once per sweep: the teacher, held-out splits, draws and counterfactuals
            task = ray.remote(_ray_cell).options(
                num_cpus=self.cpus_per_cell,
                num_gpus=self.gpus_per_cell,
                max_retries=ATTEMPTS - 1,
                retry_exceptions=True,
            )
            threads = max(1, int(self.cpus_per_cell))
            # The reference travels inside a list so Ray does not resolve it per task: a worker keeps one copy.
            pending = {task.remote(cell, [shared_ref], threads): cell for cell in cells}
            while pending:
                if _stopped(stop):
                    for ref in pending:
                        ray.cancel(ref, force=True)
                    return
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    cell = pending.pop(ref)
                    yield cell, _result(ray, ref, cell)
        finally:
            if started_here:
                ray.shutdown()

    def _connect(self, ray) -> bool:
        """Join the cluster (or start a runtime here); True when this call started it and must shut it down."""
        if ray.is_initialized():
            return False
        if self.address:
            ray.init(address=self.address)
        else:
            ray.init(
                num_cpus=self.num_cpus or os.cpu_count(),
                include_dashboard=False,
                object_store_memory=self.object_store_memory,
            )
        return True


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise ConfigError(
            f"The ray backend needs Ray ({err}): `pip install -e '.[ray]'` (ray==2.60.0), or use --backend local."
        ) from err
    return ray


def _result(ray, ref, cell: Cell) -> CellOutcome:
    """A finished task's outcome, or the failed cell's row once Ray has retried it."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:
        log.warning("cell %s failed after %d attempts: %s", cell.name, ATTEMPTS, err)
        return failed_outcome(cell, _attempts_message(err))


def _attempts_message(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"failed {ATTEMPTS} times; last: {type(err).__name__}: {text[-1] if text else ''}"[:2000]


_WORKER_SHARED: dict[str, Shared] = {}  # in a Ray worker: the sweep's shared state, fetched once per sweep


def _ray_cell(cell: Cell, shared_box: list, threads: int) -> CellOutcome:
    """The Ray task: one cell with the sweep's shared state (kept between the cells this worker runs)."""
    import ray
    import torch

    ref = shared_box[0]
    if ref.hex() not in _WORKER_SHARED:
        _WORKER_SHARED.clear()
        _WORKER_SHARED[ref.hex()] = ray.get(ref)
    torch.set_num_threads(threads)
    return run_cell(cell, _WORKER_SHARED[ref.hex()])
