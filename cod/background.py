"""Long library calls in a child process at the lowest CPU priority, so the process serving people stays responsive.

On a small CPU machine a distillation in the app's own process takes both cores and the interpreter lock from the
live predictions of every visitor. `run_in_child(fn, *args, on_event=..., stop=..., **kwargs)` runs
`fn(*args, on_event=..., stop=..., **kwargs)` in a fresh interpreter (`python -m cod.background`) under `nice 19`
with one torch thread: its events come back as they happen, a stop request reaches it, and its result or its error
is returned or raised here. `fn` must be importable by name (a module-level function); arguments and results are
pickled (a result's `model`/`tokenizer` fields can be dropped with `portable`, the student stays in its run folder).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

from cod.errors import CodError

log = logging.getLogger(__name__)

NICE = 19  # the lowest priority: the child only gets the CPU that live requests leave


def _send(stream: BinaryIO, message: Any) -> None:
    # Pickled straight onto the pipe: a teacher's weights go tensor by tensor, never as one copy in memory.
    pickle.dump(message, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    """The next message, or None when the other side closed the pipe."""
    try:
        return pickle.load(stream)
    except EOFError:
        return None


def without_model(result: Any) -> Any:
    """A distillation result without its in-memory student (saved in the run folder) and training items (in the run
    folder too), so it can be sent back: the app shows its metrics and loads the student from disk when asked."""
    import dataclasses

    return dataclasses.replace(result, model=None, tokenizer=None, training_set=None)


def run_in_child(
    fn: Callable,
    *args: Any,
    on_event: Callable[[Any], None] | None = None,
    stop: Callable[[], bool] | None = None,
    portable: Callable[[Any], Any] | None = None,
    threads: int = 1,
    **kwargs: Any,
) -> Any:
    """`fn(*args, on_event=..., stop=..., **kwargs)` in a low-priority child process; its result (passed through
    `portable` there), or its error raised here. Events reach `on_event` as they come; once `stop()` is true the
    child's `stop` callback answers true at its next check."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env["TOKENIZERS_PARALLELISM"] = "false"
    child = subprocess.Popen(
        [sys.executable, "-m", "cod.background", str(threads)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,  # messages only: the child's prints go to its stderr (see _child_main)
        env=env,
    )
    try:
        _send(child.stdin, (fn, args, kwargs, portable))
        watcher = threading.Thread(target=_forward_stop, args=(child, stop), daemon=True)
        watcher.start()
        while True:
            message = _receive(child.stdout)
            if message is None:
                code = child.wait()
                raise CodError(
                    f"The background process ended without a result (exit code {code}; out of memory?): "
                    "try again with a smaller batch or fewer epochs."
                )
            kind, payload = message
            if kind == "event":
                if on_event is not None:
                    on_event(payload)
            elif kind == "result":
                return payload
            else:  # "error": (exception or None, its kind and text, the child's traceback)
                err, described, trace = payload
                log.error("The background process failed:\n%s", trace)
                raise err if err is not None else CodError(described)
    finally:
        with _quiet():
            child.stdin.close()  # the child reads this as a stop, if it is still running
        if child.wait(timeout=60) is None:
            child.kill()


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, kind, err, trace) -> bool:
        return kind is not None and issubclass(kind, OSError)


def _forward_stop(child: subprocess.Popen, stop: Callable[[], bool] | None) -> None:
    """Tell the child to stop once `stop()` is true (checked every 0.2 s while it runs)."""
    import time

    while child.poll() is None:
        if stop is not None and stop():
            with _quiet():
                _send(child.stdin, "stop")
            return
        time.sleep(0.2)


def _child_main(threads: int) -> None:
    """The child: lowest priority, `threads` torch threads, run the call, send events and the outcome back."""
    os.nice(NICE)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the message stream
    import torch

    torch.set_num_threads(threads)
    fn, args, kwargs, portable = _receive(sys.stdin.buffer)
    stopped = threading.Event()

    def listen() -> None:  # "stop", or the parent closing the pipe (it stopped waiting, or died)
        _receive(sys.stdin.buffer)
        stopped.set()

    threading.Thread(target=listen, daemon=True).start()
    lock = threading.Lock()

    def send(message) -> None:
        with lock:
            _send(out, message)

    try:
        result = fn(*args, on_event=lambda e: send(("event", e)), stop=stopped.is_set, **kwargs)
        send(("result", portable(result) if portable is not None else result))
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the parent
        described = f"{type(err).__name__}: {err}"
        try:
            pickle.dumps(err)
        except Exception:  # noqa: BLE001 - an error that cannot travel goes as its text
            err = None
        send(("error", (err, described, traceback.format_exc())))
    out.close()


if __name__ == "__main__":
    _child_main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
