"""Background work on several cores at once: each worker thread runs its forwards on one torch thread (`own_core`),
beside the others, instead of every forward spreading over all cores in turn.

On 2 cores the offline proposer's forwards are small (one sentence's candidates): two threads per forward keep both
cores only partly busy (each operation waits for the slower thread), and a search spends as long in Python and in
the LM as in the teacher. Two searches at once, one core each, keep both busy (`Teacher.turn` lets such forwards run
beside each other). Results do not depend on the workers: each search reads only its own texts' scores.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import torch

_lanes = threading.local()
# `set_num_threads` sets the calling thread's count and the default of threads started later; while any `Lanes`
# block runs that default may be 1, so the last block to end sets back the count the first one found.
_guard = threading.Lock()
_active = 0
_default = 1


@contextlib.contextmanager
def own_core() -> Iterator[None]:
    """Forwards started inside this block (on this thread) run on one torch thread and beside other such forwards
    (one core each), instead of taking turns with them. They still take turns with every other forward (a forward
    of several threads would wait for a busy core at each operation) and give way to urgent ones. The thread's own
    count is set back on leaving (`Lanes` sets back the default of threads started later)."""
    before, threads = getattr(_lanes, "on", False), torch.get_num_threads()
    torch.set_num_threads(1)
    _lanes.on = True
    try:
        yield
    finally:
        _lanes.on = before
        torch.set_num_threads(threads)


def on_own_core() -> bool:
    """Whether this thread is inside `own_core()`."""
    return getattr(_lanes, "on", False)


class Lanes:
    """Run calls on `workers` threads inside `own_core()` (the calling thread too, while inside the block), or on
    the calling thread as submitted when `workers` is 1. On leaving, the caller's torch thread count is its own
    again, and the last of overlapping blocks (several threads) sets back the default the first one found.

        with Lanes(2) as lanes:
            futures = [lanes.submit(search, x) for x in items]
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self._pool: ThreadPoolExecutor | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Lanes:
        if self.workers > 1:
            _hold_default()
            self._stack.callback(_release_default)
            self._pool = self._stack.enter_context(ThreadPoolExecutor(self.workers, thread_name_prefix="cod-lane"))
            self._stack.enter_context(own_core())  # the caller's own forwards (between submits) take a core too
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()  # own_core, then the pool (waits for its workers), then the default thread count

    def submit(self, fn: Callable, *args) -> Future:
        """`fn(*args)` on a worker (or now, with one worker); its result or exception through the future."""
        if self._pool is not None:
            return self._pool.submit(_on_own_core, fn, *args)
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as error:  # noqa: BLE001 - the caller sees it from future.result(), as with a pool
            future.set_exception(error)
        return future


def _on_own_core(fn: Callable, *args):
    with own_core():
        return fn(*args)


def _hold_default() -> None:
    global _active, _default
    with _guard:
        if _active == 0:
            _default = torch.get_num_threads()
        _active += 1


def _release_default() -> None:
    global _active
    with _guard:
        _active -= 1
        if _active == 0:
            torch.set_num_threads(_default)  # this thread's count and the default of threads started later
