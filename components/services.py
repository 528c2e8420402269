"""Process-level services shared by every session: the model cache, the store, a background worker, ZeroGPU.

Models are loaded once per process (keyed by name) and shared; per-user data stays in `PageState`.
Long work (generation, distillation) runs in `Worker` lanes that record small events and honour a stop flag;
the UI only follows a job's events, so a closed tab or a Stop click never corrupts anything.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cod import DEMO
from cod.errors import CodError, ModelError

log = logging.getLogger("cod.app")

QUEUED, RUNNING, DONE, STOPPED, FAILED = "queued", "running", "done", "stopped", "error"


def gpu(fn: Callable | None = None, *, duration: int = 120):
    """`spaces.GPU` on a ZeroGPU Space (the package is importable there); the function unchanged elsewhere."""

    def wrap(f: Callable) -> Callable:
        try:
            import spaces  # type: ignore[import-not-found]
        except ImportError:
            return f
        return spaces.GPU(duration=duration)(f)

    return wrap(fn) if fn is not None else wrap


def short_error(err: BaseException) -> str:
    """The user-facing message: a library error as worded; anything else short, with its traceback logged."""
    if isinstance(err, CodError):
        return str(err)
    log.error("Unexpected error: %s", "".join(traceback.format_exception(err)))
    return f"Unexpected {type(err).__name__}: {str(err)[:200]} (details are in the server log)."


def ui_errors(fn: Callable) -> Callable:
    """Wrap a handler for Gradio: library errors become `gr.Error` with the library's message."""
    import inspect

    import gradio as gr

    def convert(err: Exception) -> Exception:
        if isinstance(err, gr.Error):
            return err
        return gr.Error(short_error(err), print_exception=False)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - every error reaches the user as a short message
                raise convert(err) from err

        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001
            raise convert(err) from err

    return call


@dataclass
class Job:
    """One piece of long work: its events (append-only), status, result and stop flag."""

    kind: str
    owner: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    status: str = QUEUED
    events: list[Any] = field(default_factory=list)
    result: Any = None
    error: str = ""
    started: float = 0.0
    finished: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def emit(self, event: Any) -> None:
        """Record one event (the UI reads new ones by index)."""
        self.events.append(event)

    def stop(self) -> None:
        """Ask the job to stop at its next check (a queued job never starts)."""
        self._stop.set()

    def should_stop(self) -> bool:
        """True once stop was asked: pass this as the library's `stop` callback."""
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        return self.status in (DONE, STOPPED, FAILED)


class Worker:
    """Background lanes, one thread per job kind: jobs of a kind run one at a time, in submission order."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lanes: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()

    def submit(self, kind: str, fn: Callable[[Job], Any], owner: str = "") -> Job:
        """Queue `fn(job)`; its return value becomes `job.result`."""
        job = Job(kind=kind, owner=owner)
        with self._lock:
            self._jobs[job.id] = job
            lane = self._lanes.get(kind)
            if lane is None:
                lane = self._lanes[kind] = queue.Queue()
                threading.Thread(target=self._run_lane, args=(lane,), name=f"cod-{kind}", daemon=True).start()
        lane.put((job, fn))
        return job

    def get(self, job_id: str | None) -> Job | None:
        """The job with this id, if any."""
        return self._jobs.get(job_id) if job_id else None

    def ahead_of(self, job: Job) -> int:
        """Unfinished jobs of the same kind submitted before this one (0: it runs now or next)."""
        with self._lock:
            ids = list(self._jobs)  # dicts keep insertion order = submission order
        before = ids[: ids.index(job.id)] if job.id in ids else []
        return sum(1 for i in before if self._jobs[i].kind == job.kind and not self._jobs[i].done)

    def running(self, kind: str, owner: str | None = None) -> list[Job]:
        """Jobs of a kind not finished yet (optionally of one owner)."""
        return [j for j in self._jobs.values() if j.kind == kind and not j.done and (owner is None or j.owner == owner)]

    def _run_lane(self, lane: queue.Queue) -> None:
        while True:
            job, fn = lane.get()
            if job.should_stop():
                job.status = STOPPED
                continue
            job.status, job.started = RUNNING, time.time()
            try:
                job.result = fn(job)
                job.status = STOPPED if job.should_stop() else DONE
            except Exception as err:  # noqa: BLE001 - the lane must survive any job
                job.error = short_error(err)
                job.status = FAILED
            job.finished = time.time()


def demo_teacher_dir() -> Path:
    """Where MODELS builds the embedded demo teacher."""
    from cod.modeling.demo.build import demo_teacher_dir as _dir

    return _dir()


def demo_teacher_ready() -> bool:
    """Whether the demo teacher is completely built (never starts a build)."""
    from cod.modeling.demo.build import is_built

    return is_built()


class Results(OrderedDict):
    """The latest distillation results by run key; older ones fall out (their students reload from disk)."""

    limit = 3

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class Services:
    """Everything shared by sessions of one app process; tests pass tiny models and a temp store."""

    def __init__(
        self,
        teacher: str = DEMO,
        student: str = DEMO,
        task: str = DEMO,
        store_path: str | Path | None = None,
        artifacts: str | Path | None = None,
    ) -> None:
        self.default_teacher = teacher
        self.default_student = student
        self.default_task = task
        self.store_path = store_path
        self.artifacts = Path(artifacts) if artifacts else None
        self.worker = Worker()
        self._teachers: dict[str, Any] = {}
        self._store = None
        self._build_job: Job | None = None
        self._lock = threading.Lock()  # the store and the build job
        self._model_lock = threading.Lock()  # loading a teacher (seconds) must not block the store
        self.results = Results()  # run key -> DistillResult: the last few students stay in memory

    # --- models -------------------------------------------------------------------------------------------------
    def teacher_status(self, name: str | None = None) -> tuple[bool, str]:
        """(ready, message): the demo teacher may still be building; other names load on demand."""
        name = (name or self.default_teacher).strip()
        if name != DEMO or demo_teacher_ready():
            return True, ""
        return False, (
            "The demo teacher is being built (all-mpnet-base-v2 with a trained head; a few minutes on 2 cores, once). "
            "This page updates by itself when it is ready; or run `python -m cod teacher build-demo`."
        )

    def teacher(self, name: str | None = None):
        """The `Teacher` for a name (Hub id, local path or 'demo'), loaded once per process."""
        name = (name or self.default_teacher).strip()
        ready, message = self.teacher_status(name)
        if not ready:
            raise ModelError(message)
        with self._model_lock:
            if name not in self._teachers:
                try:
                    from cod.modeling.loading import load_teacher
                except ImportError as err:  # the library part is still being written
                    raise ModelError(f"Loading teachers is not available yet ({err}).") from err
                self._teachers[name] = load_teacher(name)
            return self._teachers[name]

    def build_demo_teacher(self) -> Job | None:
        """Start building the demo teacher in the background (once per process); None when nothing is to build.

        The library holds a file lock, so a build already running elsewhere (`make run`, the CLI) is waited for."""
        if self.default_teacher != DEMO or demo_teacher_ready():
            return None
        with self._lock:
            if self._build_job is None:
                from cod.modeling.demo.build import build_demo_teacher

                def run(job):
                    return build_demo_teacher(progress=lambda f, m: job.emit({"fraction": f, "message": m}))

                self._build_job = self.worker.submit("build", run)
            return self._build_job

    def build_progress(self) -> str:
        """One line on the background build ("" when none is running)."""
        job = self._build_job
        if job is None or job.status == DONE:
            return ""
        if job.status == FAILED:
            return f"Building the demo teacher failed: {job.error}"
        last = job.events[-1] if job.events else {"fraction": 0.0, "message": "waiting for another build to finish"}
        return f"{100 * last['fraction']:.0f}% · {last['message']}"

    def warm(self) -> None:
        """Load the default teacher in the background so the first keystroke is answered at full speed."""

        def run():
            try:
                job = self.build_demo_teacher()
                while job is not None and not job.done:
                    time.sleep(1)
                if self.teacher_status()[0]:
                    self.teacher()
            except Exception as err:  # noqa: BLE001 - warming is best effort; the UI reports real errors
                log.warning("Could not warm the teacher: %s", short_error(err))

        threading.Thread(target=run, name="cod-warm", daemon=True).start()

    # --- store --------------------------------------------------------------------------------------------------
    def store(self):
        """The project store (SQLite at `store_path`, default `$COD_HOME/cod.db`), opened once."""
        with self._lock:
            if self._store is None:
                from cod.store.projects import Store

                self._store = Store(self.store_path)
            return self._store

    def artifacts_dir(self) -> Path:
        """Where runs and exports are written."""
        if self.artifacts is None:
            from cod.paths import cod_home

            self.artifacts = cod_home() / "app"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        return self.artifacts

