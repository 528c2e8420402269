"""The teacher: `predict_proba(texts) -> (n, num_labels)`, batched, without grad, cached by text.

Everything that asks the teacher (proposers, distillation, the UI) goes through one `Teacher`, so a text is
never scored twice in a process; `forward_passes` counts the texts that actually ran through the model.
One forward gives both the logits and the mean-pooled last hidden state (`embed`), so both are cached together.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from cod.errors import ModelError
from cod.modeling.heads import mean_pool
from cod.modeling.inference import length_sorted_batches, softmax
from cod.modeling.lanes import on_own_core


class LRU(OrderedDict):
    """A dict that keeps at most `limit` entries, dropping the least recently used (read with `get`)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __reduce__(self):
        # OrderedDict's own reduce rebuilds with LRU() (no limit); a teacher is pickled to run sweep cells elsewhere.
        return (type(self), (self.limit,), None, None, iter(list(self.items())))

    def get(self, key, default=None):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


_urgency = threading.local()


@contextlib.contextmanager
def urgent() -> Iterator[None]:
    """Forwards started inside this block (on this thread) go before background ones: a person waits for them."""
    before = getattr(_urgency, "on", False)
    _urgency.on = True
    try:
        yield
    finally:
        _urgency.on = before


def is_urgent() -> bool:
    """Whether this thread is inside `urgent()`: a person waits for what it runs."""
    return getattr(_urgency, "on", False)


def cache_limit() -> int:
    """Texts whose scores a teacher keeps (COD_TEACHER_CACHE, default 20,000: about 60 MB with 768-wide embeddings)."""
    return max(1, int(os.environ.get("COD_TEACHER_CACHE", "20000")))


class Teacher:
    """A sequence classifier wrapped for scoring: cached logits per text, label names from its config."""

    kind = "classifier"

    def __init__(self, model, tokenizer, name: str = "", max_length: int = 128, batch_size: int = 32):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "") or "teacher"
        self.max_length = max_length
        self.batch_size = batch_size
        config = model.config
        self.label_names = [str(config.id2label[i]) for i in range(config.num_labels)]
        # Bounded: a public app scores every visitor's keystrokes, so the oldest texts fall out.
        self._logits: LRU = LRU(cache_limit())  # text -> (num_labels,)
        self._embeddings: LRU = LRU(cache_limit())  # text -> (hidden,), mean-pooled last layer
        self.forward_passes = 0  # texts run through the model (cache misses)
        self._make_locks()

    def _make_locks(self) -> None:
        self._lock = threading.Lock()  # the caches only: a cached text never waits for a forward
        # One forward (one batch) at a time, the UI and workers share a teacher; between batches a waiting urgent
        # caller (a live prediction) goes before background work (a search, a distillation's targets).
        self._gate = threading.Condition()
        self._busy = False  # a forward that is not `own_core` runs
        self._lanes = 0  # `own_core` forwards running (beside each other)
        self._urgent_waiting = 0
        self._others_waiting = 0  # forwards that are not `own_core` waiting: lanes let them in

    def __getstate__(self) -> dict:
        # Pickled to run sweep cells elsewhere (Ray's object store) or a distillation in a child process, score cache
        # included (copied under the lock: live predictions may add to it meanwhile); locks do not pickle.
        locks = ("_lock", "_gate", "_busy", "_lanes", "_urgent_waiting", "_others_waiting")
        with self._lock:
            state = {key: value for key, value in self.__dict__.items() if key not in locks}
            for name in ("_logits", "_embeddings"):
                copied = state[name] = LRU(state[name].limit)
                copied.update(getattr(self, name))
        from transformers import PreTrainedModel

        if isinstance(self.model, PreTrainedModel):  # from_pretrained models hold a ContextVar, which does not pickle
            model = state.pop("model")
            state["_model_parts"] = (type(model), model.config, model.state_dict(), next(model.parameters()).dtype)
        return state

    def __setstate__(self, state: dict) -> None:
        parts = state.pop("_model_parts", None)
        self.__dict__.update(state)
        if parts is not None:
            model_class, config, weights, dtype = parts
            self.model = model_class(config).to(dtype)
            self.model.load_state_dict(weights)
            self.model.eval()
        self._make_locks()

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def cost(self) -> dict[str, int]:
        """What scoring cost so far, in the shape every teacher kind reports (classifiers send no requests)."""
        return {"forwards": self.forward_passes, "cache_hits": 0, "requests": 0, "tokens": 0}

    def info(self) -> dict:
        """Kind, name, labels and cost: shown in the app and saved with runs."""
        return {
            "kind": self.kind,
            "name": self.name,
            "labels": self.label_names,
            "device": str(self.device),
            "cost": self.cost,
        }

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Teacher logits, (n, num_labels); only texts never seen before run through the model."""
        return self._cached(texts, self._logits, lambda: self.num_labels)

    def remember(self, texts: Sequence[str], logits: np.ndarray) -> None:
        """Seed the logits cache with outputs this teacher is known to give (the demo teacher's, on its task's
        splits)."""
        with self._lock:
            for text, row in zip(texts, np.asarray(logits, dtype=np.float32)):
                self._logits.setdefault(text, row)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled last hidden states, (n, hidden); cached with the logits (one forward serves both)."""
        return self._cached(texts, self._embeddings, lambda: self.hidden_size)

    def _cached(self, texts: Sequence[str], cache: LRU, width: Callable[[], int]) -> np.ndarray:
        """Rows of `cache` for `texts`, (n, width), running only the texts it lacks through the model.

        `width` is called only for an empty request: some configs have no `hidden_size` to read up front.
        The rows are gathered before anything is evicted, so a request larger than the cache still works."""
        texts = list(texts)
        with self._lock:
            rows = {t: row for t in dict.fromkeys(texts) if (row := cache.get(t)) is not None}
        missing = [t for t in dict.fromkeys(texts) if t not in rows]
        if missing:
            fresh = self._forward(missing)  # text -> (logits, pooled or None)
            rows.update({t: pair[cache is self._embeddings] for t, pair in fresh.items()})
        if not texts:
            return np.zeros((0, width()), dtype=np.float32)
        if any(rows.get(t) is None for t in missing):  # only embeddings can be absent after a forward
            raise ModelError(f"The teacher {self.name!r} does not return hidden states, so it cannot embed texts.")
        return np.stack([rows[t] for t in texts])

    def cached_proba(self, text: str) -> np.ndarray | None:
        """The probabilities of a text scored before, (num_labels,); None when it never was (nothing runs)."""
        with self._lock:
            row = self._logits.get(text)
        return None if row is None else softmax(row)

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the model's cores for one batch; urgent callers (see `urgent`) go before background ones. Other
        models sharing those cores (a live preview's bfloat16 copy) take turns through it too. Forwards on their own
        core (`own_core`, background) run beside each other, and wait for any other forward that waits."""
        hurry, lane = is_urgent(), on_own_core() and not is_urgent()
        with self._gate:
            self._urgent_waiting += hurry
            self._others_waiting += not lane
            if lane:
                while self._busy or self._urgent_waiting or self._others_waiting:
                    self._gate.wait()
                self._lanes += 1
            else:
                while self._busy or self._lanes or (not hurry and self._urgent_waiting):
                    self._gate.wait()
                self._busy = True
            self._urgent_waiting -= hurry
            self._others_waiting -= not lane
        try:
            yield
        finally:
            with self._gate:
                if lane:
                    self._lanes -= 1
                else:
                    self._busy = False
                self._gate.notify_all()

    @property
    def hidden_size(self) -> int:
        config = self.model.config
        return int(getattr(config, "hidden_size", None) or config.get_text_config().hidden_size)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Teacher probabilities, (n, num_labels)."""
        return softmax(self.logits(texts))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Teacher's predicted class indices, (n,)."""
        return self.logits(texts).argmax(axis=1)

    def _forward(self, texts: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """Run texts through the model, cache the results, and return them: text -> (logits, pooled or None).

        The model is taken batch by batch, so a live prediction waits for at most one batch of a long request."""
        fresh: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        batches = length_sorted_batches(
            self.model, self.tokenizer, texts, self.max_length, self.batch_size, output_hidden_states=True
        )
        while True:
            with self.turn():
                batch = next(batches, None)
            if batch is None:
                return fresh
            idx, out, enc = batch
            logits = out.logits.float().cpu().numpy()  # (batch, num_labels)
            states = getattr(out, "hidden_states", None)
            pooled = None
            if states:  # mean over real tokens of the last layer: (batch, seq, H) -> (batch, H)
                pooled = mean_pool(states[-1], enc.get("attention_mask")).float().cpu().numpy()
            with self._lock:
                for j, i in enumerate(idx):
                    self._logits[texts[i]] = logits[j]
                    if pooled is not None:
                        self._embeddings[texts[i]] = pooled[j]
                    fresh[texts[i]] = (logits[j], None if pooled is None else pooled[j])
                self.forward_passes += len(idx)
