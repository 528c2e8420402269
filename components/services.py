"""Process-level services shared by every session: the model cache, the store, a background worker, ZeroGPU.

Models are loaded once per process (keyed by name) and shared; per-user data stays in `PageState`.
Long work (generation, distillation) runs in `Worker` lanes that record small events and honour a stop flag;
the UI only follows a job's events, so a closed tab or a Stop click never corrupts anything.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import logging
import re
import secrets
import shutil
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cod import DEMO
from cod.errors import CodError, ModelError, StoreError

log = logging.getLogger("cod.app")

# The owner of the request being handled: set by `ui_errors` from the session's PageState, read by `Services.store()`
# and `Services.artifacts_dir()`, so every store access of a handler is limited to its visitor's rows.
_current_owner: contextvars.ContextVar[str | None] = contextvars.ContextVar("cod_owner", default=None)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


def new_browser_token() -> str:
    """A fresh anonymous identity for a visitor's browser (kept in gr.BrowserState)."""
    return secrets.token_urlsafe(32)


def owner_for(profile_username: str | None, browser_token: str | None) -> tuple[str, str]:
    """(owner, browser token): the signed-in Hugging Face user, else the browser's anonymous identity (a new one when
    the browser sent none or a malformed one). The stored owner is a hash, so the store never holds the token."""
    if profile_username:
        return f"hf:{profile_username}", browser_token or ""
    token = browser_token if isinstance(browser_token, str) and _TOKEN.match(browser_token) else new_browser_token()
    return "anon:" + hashlib.sha256(token.encode()).hexdigest()[:32], token


def session_owner(state) -> str:
    """The owner of a session: set on page load; a session that never loaded the page (an API client) gets a fresh
    anonymous identity in public mode, and the shared local owner '' otherwise."""
    from cod.public import public_mode

    if not state.owner and public_mode():
        state.owner = owner_for(None, None)[0]
    return state.owner


@contextlib.contextmanager
def acting_as(owner: str):
    """Run the block as `owner`: `Services.store()` and `artifacts_dir()` inside it are that owner's."""
    token = _current_owner.set(owner)
    try:
        yield
    finally:
        _current_owner.reset(token)


def _owner_in(args) -> str | None:
    from components.state import PageState

    state = next((a for a in args if isinstance(a, PageState)), None)
    return None if state is None else session_owner(state)


QUEUED, RUNNING, DONE, STOPPED, FAILED = "queued", "running", "done", "stopped", "error"

# Every endpoint goes through Gradio's queue in a bounded group. Live predictions have their own group, so they
# never wait behind data loads or model loads; the handlers that only follow a background job's events (they sleep
# between polls) share a large group; Stop buttons their own small one.
LIVE = {"concurrency_id": "live", "concurrency_limit": 32}  # waiting callers share forwards (`live_proba`)
FOLLOW = {"concurrency_id": "follow", "concurrency_limit": 24}  # each holds one of the 128 threads while it polls
CONTROL = {"concurrency_id": "control", "concurrency_limit": 4}


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
    """The user-facing message: a library error as worded; anything else short, with its traceback logged. In public
    mode server paths are cut to their last part and an unexpected error shows only its kind."""
    from cod.public import hide_paths, public_mode

    public = public_mode()
    if isinstance(err, CodError):
        return hide_paths(str(err)) if public else str(err)
    log.error("Unexpected error: %s", "".join(traceback.format_exception(err)))
    if public:
        return f"Unexpected {type(err).__name__} (details are in the server log)."
    return f"Unexpected {type(err).__name__}: {str(err)[:200]} (details are in the server log)."


def shown_path(path) -> str:
    """A path as shown to the person using the app: whole locally, only its last part in public mode."""
    from cod.public import public_mode

    return Path(path).name if public_mode() else str(path)


def ui_errors(fn: Callable) -> Callable:
    """Wrap a handler for Gradio: library errors become `gr.Error` with the library's message."""
    import inspect

    import gradio as gr

    def convert(err: Exception) -> Exception:
        if isinstance(err, gr.Error):
            return err
        return gr.Error(short_error(err), print_exception=False)

    def scope(args):
        owner = _owner_in(args)
        return acting_as(owner) if owner is not None else contextlib.nullcontext()

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args, **kwargs):
            steps = fn(*args, **kwargs)
            while True:
                # Each step may run on another thread (Gradio iterates generators in a pool): scope every step.
                try:
                    with scope(args):
                        value = next(steps)
                except StopIteration:
                    return
                except Exception as err:  # noqa: BLE001 - every error reaches the user as a short message
                    raise convert(err) from err
                yield value

        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            with scope(args):
                return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001
            raise convert(err) from err

    return call


_visitor_locks: dict[str, threading.Lock] = {}
_visitor_locks_guard = threading.Lock()


def one_at_a_time_per_visitor(fn: Callable) -> Callable:
    """Run `fn` under its visitor's own lock (the PageState argument's owner): one visitor's events that replace their
    data stay in order (a slow first load cannot land after an upload) while other visitors run alongside."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        owner = _owner_in(args) or ""
        with _visitor_locks_guard:
            lock = _visitor_locks.setdefault(owner, threading.Lock())
        with lock:
            return fn(*args, **kwargs)

    return call


@dataclass
class Job:
    """One piece of long work: its events (append-only), status, result and stop flag."""

    kind: str
    owner: str = ""  # the session that started it
    visitor: str = ""  # whom it is for (the session's owner): the unit of fairness and of queue limits
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
    """Background lanes, one thread per job kind: jobs of a kind run one at a time. The next job is the oldest one of
    the visitor served longest ago (round robin), so one visitor's queue never starves the others; with
    `max_queued` set (public mode) a visitor may have one job running and at most that many waiting."""

    def __init__(self, max_queued: int | None = None) -> None:
        self._jobs: dict[str, Job] = {}
        self._lanes: dict[str, list] = {}
        self._served: dict[str, int] = {}  # visitor -> turn of their last start
        self._turn = 0
        self._lock = threading.Condition()
        self.max_queued = max_queued

    def submit(self, kind: str, fn: Callable[[Job], Any], owner: str = "", visitor: str | None = None) -> Job:
        """Queue `fn(job)`; its return value becomes `job.result`. `owner`: the session; `visitor`: who it is for
        (the session's owner; the session itself when not given)."""
        job = Job(kind=kind, owner=owner)
        job.visitor = owner if visitor is None else visitor
        with self._lock:
            if self.max_queued is not None and kind != "build":
                waiting = [j for j in self._jobs.values() if j.visitor == job.visitor and not j.done]
                if len(waiting) > self.max_queued:
                    raise CodError(
                        f"You already have {len(waiting)} jobs running or waiting (at most "
                        f"{self.max_queued + 1}): wait for one to finish or stop one."
                    )
            self._jobs[job.id] = job
            lane = self._lanes.get(kind)
            if lane is None:
                lane = self._lanes[kind] = []
                threading.Thread(target=self._run_lane, args=(lane,), name=f"cod-{kind}", daemon=True).start()
            lane.append((job, fn))
            self._lock.notify_all()
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
        return [
            j for j in self._jobs.values() if j.kind == kind and not j.done and (owner is None or j.owner == owner)
        ]

    def _next(self, lane: list) -> tuple[Job, Callable]:
        with self._lock:
            while not lane:
                self._lock.wait()
            i = min(range(len(lane)), key=lambda n: (self._served.get(lane[n][0].visitor, -1), n))
            job, fn = lane.pop(i)
            self._turn += 1
            self._served[job.visitor] = self._turn
            return job, fn

    def _run_lane(self, lane: list) -> None:
        while True:
            job, fn = self._next(lane)
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


def _newest_change(path: Path) -> float:
    """The latest modification time in a file or folder tree."""
    if not path.is_dir():
        return path.stat().st_mtime
    return max([path.stat().st_mtime] + [p.stat().st_mtime for p in path.rglob("*")])


def _teacher_key(name: str, spec: dict[str, Any]) -> Any:
    """What a loaded teacher is cached under: its name, with the LLM-teacher settings when there are any."""
    if not spec:
        return name
    labels = tuple(spec["label_names"]) if spec.get("label_names") is not None else None
    options = spec.get("options")
    return (name, spec.get("kind"), labels, options.key() if options is not None else None)


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
        from cod.public import Limits, public_mode

        self.public = public_mode()
        self.limits = Limits.from_env()
        self.worker = Worker(max_queued=self.limits.max_queued if self.public else None)
        from cod.modeling.loading import max_cached_teachers
        from cod.modeling.scoring import LRU

        self._teachers: LRU = LRU(max_cached_teachers())  # name -> Teacher, least recently used dropped
        self._batchers: LRU = LRU(max_cached_teachers())  # id(teacher) -> LiveBatcher (holding that teacher)
        self._loading: dict[str, threading.Lock] = {}
        # (visitor, name) -> the settings that visitor last loaded it with: one visitor's label words, prompt or
        # calibration never change the teacher another visitor gets under the same name
        self._teacher_specs: LRU = LRU(4096)
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

    def teacher(self, name: str | None = None, kind: str | None = None, label_names=None, options=None):
        """The teacher for a name (classifier, causal LM such as 'demo-llm', or api:MODEL), loaded once per process.

        Settings given for a name (kind, label names, `LLMTeacherOptions`) are remembered for the visitor of the
        request (the owner; locally the one owner ''), so every tab of theirs asking for the teacher by name alone gets
        the one their Models tab loaded, and nobody else's."""
        name = (name or self.default_teacher).strip()
        ready, message = self.teacher_status(name)
        if not ready:
            raise ModelError(message)
        with self._model_lock:  # held only for lookups: a slow load never freezes other models' predictions
            visitor = (_current_owner.get() or "", name)
            if kind is not None or label_names is not None or options is not None:
                self._teacher_specs[visitor] = {"kind": kind or "auto", "label_names": label_names, "options": options}
            spec = self._teacher_specs.get(visitor, {})
            key = _teacher_key(name, spec)
            teacher = self._teachers.get(key)
            if teacher is not None:
                return teacher
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one load per name and settings; a second visitor asking for it waits for the first load
            with self._model_lock:
                teacher = self._teachers.get(key)
            if teacher is None:
                from cod.modeling.loading import load_teacher

                teacher = load_teacher(name, **spec)
                with self._model_lock:
                    self._teachers[key] = teacher
                    self._loading.pop(key, None)
            return teacher

    def run_heavy(self, fn: Callable, *args, on_event=None, stop=None, portable=None, **kwargs):
        """`fn(*args, on_event=..., stop=..., **kwargs)`: in a child process at the lowest CPU priority when
        `cod.public.jobs_in_child()` (public mode; its result passes through `portable` there), else right here."""
        from cod.public import jobs_in_child

        if not jobs_in_child():
            return fn(*args, on_event=on_event, stop=stop, **kwargs)
        from cod.background import run_in_child

        return run_in_child(fn, *args, on_event=on_event, stop=stop, portable=portable, **kwargs)

    def live_proba(self, teacher, text: str):
        """The teacher's probabilities for one typed text, (num_labels,): concurrent visitors' texts share forwards,
        which go before background work on the same teacher (see `cod.modeling.live`)."""
        return self._live_batcher(teacher).predict_proba(text)

    def live_precision(self, teacher) -> str:
        """How `live_proba` computes new texts for `teacher`: "canonical" (as stored) or "bfloat16" (a preview)."""
        return self._live_batcher(teacher).precision

    def prepare_live(self, teacher) -> None:
        """Make what `live_proba` needs for `teacher` now (a bfloat16 preview copy), not at a visitor's keystroke."""
        self._live_batcher(teacher).scorer  # noqa: B018 - built on first access

    def _live_batcher(self, teacher):
        from cod.modeling.live import LiveBatcher

        with self._model_lock:
            batcher = self._batchers.get(id(teacher))
            if batcher is None or batcher.teacher is not teacher:
                batcher = self._batchers[id(teacher)] = LiveBatcher(teacher)
        return batcher

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
                    self.prepare_live(self.teacher())
            except Exception as err:  # noqa: BLE001 - warming is best effort; the UI reports real errors
                log.warning("Could not warm the teacher: %s", short_error(err))

        threading.Thread(target=run, name="cod-warm", daemon=True).start()
        if self.public:
            threading.Thread(target=self._clean_up_forever, name="cod-retention", daemon=True).start()

    def _clean_up_forever(self, every_s: float = 3600.0) -> None:
        """Remove anonymous visitors' expired run folders, exports and store rows, hourly (public mode)."""
        while True:
            try:
                removed = self.remove_expired(self.limits.retention_hours)
                if removed:
                    log.info("Removed %d expired anonymous run folder(s) and export(s).", len(removed))
            except (OSError, StoreError) as err:
                log.warning("Could not remove expired files or rows: %s", err)
            time.sleep(every_s)

    # --- store --------------------------------------------------------------------------------------------------
    def store(self):
        """The project store (SQLite at `store_path`, default `$COD_HOME/cod.db`, opened once), as seen by the owner
        of the request being handled; outside a request: locally the shared owner '', in public mode an error."""
        return self._whole_store().for_owner(self._owner())

    def _whole_store(self):
        """The store unscoped (every owner's rows): only for the process's own housekeeping, never a request."""
        with self._lock:
            if self._store is None:
                from cod.store import Store

                self._store = Store(self.store_path)
            return self._store

    def _owner(self) -> str:
        owner = _current_owner.get()
        if owner is not None:
            return owner
        from cod.public import public_mode

        if public_mode():
            raise StoreError("This request has no visitor identity: reload the page.")
        return ""

    def artifacts_root(self) -> Path:
        """The folder holding every owner's runs and exports."""
        if self.artifacts is None:
            from cod.paths import cod_home

            self.artifacts = cod_home() / "app"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        return self.artifacts

    def artifacts_dir(self) -> Path:
        """Where the current owner's runs and exports are written (their own folder in public mode)."""
        owner = self._owner()
        root = self.artifacts_root()
        if not owner:
            return root
        folder = root / "owners" / re.sub(r"[^A-Za-z0-9_-]+", "-", owner)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def remove_expired(self, max_age_hours: float, now: float | None = None) -> list[Path]:
        """Delete anonymous owners' run folders and exports not changed for `max_age_hours`, and every project, run
        and sweep of the anonymous owners none of whose rows changed for as long; returns the files that went."""
        owners = self.artifacts_root() / "owners"
        now = now or time.time()
        cutoff = now - max_age_hours * 3600
        removed = []
        for kind in ("runs", "exports"):
            for item in sorted(owners.glob(f"anon-*/{kind}/*")):
                if _newest_change(item) < cutoff:
                    shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)
                    removed.append(item)
        gone = self._whole_store().remove_expired_owners(max_age_hours, now=datetime.fromtimestamp(now, UTC))
        if gone:
            log.info("Removed the projects, runs and sweeps of %d expired anonymous visitor(s).", len(gone))
        return removed
