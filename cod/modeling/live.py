"""Live predictions of many people at once, merged: concurrent single-text requests to one teacher become one batched
forward instead of a queue of forwards (on CPU, one forward of 16 short texts costs far less than 16 forwards).

The first caller to arrive while no batch is forming leads: it waits `window_s` for near-simultaneous callers, takes
every pending text (up to `max_batch`), scores them in one `predict_proba` call marked urgent (it goes before
background work on the same teacher, see `cod.modeling.scoring.urgent`), hands each caller its own row, and passes
the lead to the oldest caller still waiting, if any. A text the teacher scored before is answered at once.

New texts run through the teacher, or (see `cod.modeling.precision`) through a bfloat16 copy of a float32 classifier
on a CPU with bfloat16 hardware: answers cached apart from the teacher's, near-ties rechecked by the teacher itself.
`precision` says which, for the UI.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from cod.modeling.precision import CANONICAL, PreviewScorer, live_precision
from cod.modeling.scoring import urgent


@dataclass(eq=False)
class _Request:
    text: str
    wake: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    finished: bool = False
    probs: np.ndarray | None = None
    error: BaseException | None = None


class LiveBatcher:
    """Merges concurrent `predict_proba(text)` calls on one teacher into batched forwards."""

    def __init__(self, teacher, window_s: float = 0.003, max_batch: int = 32) -> None:
        self.teacher = teacher
        self.precision = live_precision(teacher)  # CANONICAL or "bfloat16"
        self._scorer = teacher if self.precision == CANONICAL else None  # the bfloat16 copy is made on first use
        self.window_s = window_s
        self.max_batch = max_batch
        self.batches = 0  # forwards run (for benches and tests)
        self._lock = threading.Lock()
        self._building = threading.Lock()
        self._pending: list[_Request] = []
        self._leading = False

    def predict_proba(self, text: str) -> np.ndarray:
        """The teacher's probabilities for one text, (num_labels,), batched with whoever asks at the same time."""
        cached = getattr(self._scorer or self.teacher, "cached_proba", None)
        probs = cached(text) if cached is not None else None
        if probs is not None:
            return probs
        request = _Request(text)
        with self._lock:
            self._pending.append(request)
            if not self._leading:
                self._leading = request.leads = True
        while not request.finished:
            if request.leads:
                self._lead()
            else:
                request.wake.wait()
                request.wake.clear()
        if request.error is not None:
            raise request.error
        return request.probs

    @property
    def scorer(self):
        """What scores new texts: the teacher, or its bfloat16 preview (built here, by the one leading caller)."""
        with self._building:  # the leader and a warm-up may ask at once: one copy
            if self._scorer is None:
                self._scorer = PreviewScorer(self.teacher)
        return self._scorer

    def _lead(self) -> None:
        """Score the oldest pending texts (the leader's own among them) in one forward, then pass the lead on."""
        if self.window_s > 0:
            time.sleep(self.window_s)  # near-simultaneous callers join this batch
        with self._lock:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        try:
            with urgent():
                rows = self.scorer.predict_proba([r.text for r in batch])  # (batch, num_labels)
            for request, row in zip(batch, rows):
                request.probs = row
        except Exception as err:  # every caller of this batch gets the error, as its own call would have
            for request in batch:
                request.error = err
        self.batches += 1
        with self._lock:
            for request in batch:
                request.finished, request.leads = True, False
                request.wake.set()
            if self._pending:  # the oldest waiting caller leads the next batch
                self._pending[0].leads = True
                self._pending[0].wake.set()
            else:
                self._leading = False
