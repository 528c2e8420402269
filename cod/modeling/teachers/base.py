"""What LLM teachers share: per-label scores per text, cached in memory and on disk, normalised and calibrated.

A subclass scores texts it has never seen (`_score`) into `Score`s: the raw probability of each label (unnormalised;
its sum is the label mass, the share of the answer that named a label) and what it cost. Everything else is here:
the two caches, renormalising over the labels, contextual calibration (Zhao et al. 2021: divide by the scores of
content-free inputs), the low-mass warning, the cost counters and `info()`. Callers see the classifier teacher's
methods: `label_names`, `num_labels`, `predict_proba`, `predict`, `logits`, `forward_passes`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cod.modeling.teachers.cache import ScoreCache, fingerprint_key
from cod.modeling.teachers.prompt import CONTENT_FREE, Prompt

log = logging.getLogger(__name__)

MEMORY_ROWS = 50_000  # texts kept in memory per teacher; the disk cache holds the rest
SAVE_EVERY = 64  # texts scored between writes to the disk cache
LOGIT_FLOOR = 1e-6  # probabilities are clipped here before the log, so a 0 vote share gives a finite logit
_CACHE_FORMAT = 1  # bump when a stored Score's shape changes


@dataclass
class Score:
    """What a teacher said about one text."""

    raw: list[float]  # per label, unnormalised: the probability the answer took for that label
    mode: str = "probabilities"  # probabilities | logprobs | votes
    shared: float = 0.0  # API logprobs: mass outside the top alternatives, shared among labels not seen there
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mass(self) -> float:
        """The label mass: how much of the answer went to the labels (before renormalising)."""
        return float(sum(self.raw))

    def probs(self) -> np.ndarray:
        """Renormalised over the labels, (num_labels,); uniform when no label got any mass."""
        raw = np.asarray(self.raw, dtype=np.float64) + self.shared_per_label()
        total = raw.sum()
        return raw / total if total > 0 else np.full(len(raw), 1.0 / len(raw))

    def shared_per_label(self) -> np.ndarray:
        unseen = np.asarray(self.extra.get("unseen", []), dtype=bool)
        if not self.shared or not unseen.any():
            return np.zeros(len(self.raw))
        return unseen * (self.shared / unseen.sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _CACHE_FORMAT,
            "raw": self.raw,
            "mode": self.mode,
            "shared": self.shared,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Score | None:
        if d.get("format") != _CACHE_FORMAT:
            return None
        return cls(
            [float(x) for x in d["raw"]],
            d.get("mode", "probabilities"),
            float(d.get("shared", 0.0)),
            d.get("extra", {}),
        )


class ScoredTeacher:
    """Base of the causal-LM and API teachers: caches, normalisation, calibration, costs."""

    kind = ""

    def __init__(
        self,
        name: str,
        prompt: Prompt,
        calibrate: bool = False,
        cache: ScoreCache | None | bool = None,
        low_mass: float = 0.1,
    ):
        """`cache` None: the shared `$COD_HOME/cache/teacher` file; False: memory only."""
        self.name = name
        self.prompt = prompt
        self.label_names = list(prompt.label_names)
        self.calibrate = calibrate
        self.low_mass = low_mass
        self.disk = ScoreCache() if cache is None or cache is True else (cache or None)
        self._memory: OrderedDict[str, Score] = OrderedDict()
        self._lock = threading.RLock()  # one scoring at a time: the UI and workers share a teacher
        self._calibration: np.ndarray | None = None
        self._warned = False
        self.forward_passes = 0  # texts scored now (cache misses), as for the classifier teacher
        self.cache_hits = 0  # texts answered from the disk cache
        self.requests = 0  # API requests sent (0 for local models)
        self.tokens = 0  # API tokens spent

    # --- what subclasses provide ----------------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        """What determines a score besides the text: model identity, prompt version (never a key)."""
        raise NotImplementedError

    def _score(self, texts: list[str]) -> list[Score]:
        """Scores for texts in no cache, in order."""
        raise NotImplementedError

    # --- the classifier teacher's interface -----------------------------------------------------------------------
    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def cache_key(self) -> str:
        return fingerprint_key({"format": _CACHE_FORMAT, **self.fingerprint()})

    def scores(self, texts: Sequence[str]) -> list[Score]:
        """One `Score` per text; only texts in neither cache are scored."""
        texts = list(texts)
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._memory]
            if missing and self.disk is not None:
                stored = self.disk.get_many(self.cache_key, missing)
                for text, value in stored.items():
                    score = Score.from_dict(value)
                    if score is not None:
                        self._remember(text, score)
                        self.cache_hits += 1
                missing = [t for t in missing if t not in self._memory]
            # Stored chunk by chunk: a long scoring run that is stopped or killed keeps what it paid for.
            for start in range(0, len(missing), SAVE_EVERY):
                chunk = missing[start : start + SAVE_EVERY]
                new = self._score(chunk)
                self.forward_passes += len(chunk)
                if self.disk is not None:
                    self.disk.put_many(self.cache_key, {t: s.to_dict() for t, s in zip(chunk, new)})
                for text, score in zip(chunk, new):
                    self._remember(text, score)
                self._warn_if_low(new)
            out = [self._memory[t] for t in texts]
            for t in texts:
                self._memory.move_to_end(t)
            return out

    def _remember(self, text: str, score: Score) -> None:
        self._memory[text] = score
        while len(self._memory) > MEMORY_ROWS:
            self._memory.popitem(last=False)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Teacher probabilities over the labels, (n, num_labels); calibrated when `calibrate` is on."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        probs = np.stack([s.probs() for s in self.scores(texts)])  # (n, L)
        if self.calibrate:
            probs = probs / self.calibration()[None, :]
            probs = probs / probs.sum(axis=1, keepdims=True)
        return probs.astype(np.float32)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Log-probabilities, (n, num_labels): softmax gives `predict_proba` back (KD reads these)."""
        return np.log(np.clip(self.predict_proba(texts), LOGIT_FLOOR, 1.0)).astype(np.float32)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted class indices, (n,)."""
        return self.predict_proba(texts).argmax(axis=1)

    def label_mass(self, texts: Sequence[str]) -> np.ndarray:
        """Label mass per text, (n,): the share of the answer that went to any label."""
        return np.array([s.mass for s in self.scores(texts)])

    def calibration(self) -> np.ndarray:
        """Mean label probabilities on content-free inputs, (num_labels,) (scored once, then cached)."""
        with self._lock:
            if self._calibration is None:
                probs = np.stack([s.probs() for s in self.scores(list(CONTENT_FREE))])
                self._calibration = np.clip(probs.mean(axis=0), LOGIT_FLOOR, None)
            return self._calibration

    # --- reporting ------------------------------------------------------------------------------------------------
    def _warn_if_low(self, new: list[Score]) -> None:
        mass = float(np.mean([s.mass for s in new]))
        if mass < self.low_mass and not self._warned:
            self._warned = True
            log.warning(
                "The teacher %s gives the labels only %.0f%% of its answer on average (label mass %.3f): its answers "
                "are mostly other words. Set label words it uses (--label-words), or a clearer prompt.",
                self.name,
                100 * mass,
                mass,
            )

    @property
    def mean_label_mass(self) -> float | None:
        """Mean label mass over the texts this teacher holds in memory, content-free inputs aside (None before any)."""
        with self._lock:
            masses = [s.mass for t, s in self._memory.items() if t not in CONTENT_FREE]
        return float(np.mean(masses)) if masses else None

    @property
    def cost(self) -> dict[str, int]:
        """What scoring cost so far: texts scored now, cache hits, API requests and tokens."""
        return {
            "forwards": self.forward_passes,
            "cache_hits": self.cache_hits,
            "requests": self.requests,
            "tokens": self.tokens,
        }

    def info(self) -> dict[str, Any]:
        """Kind, labels, prompt, calibration, label mass and cost: shown in the app and saved with runs."""
        mass = self.mean_label_mass
        info = {
            "kind": self.kind,
            "name": self.name,
            "labels": self.label_names,
            "prompt": self.prompt.to_dict(),
            "calibrated": self.calibrate,
            "mean_label_mass": None if mass is None else round(mass, 4),
            "low_label_mass": mass is not None and mass < self.low_mass,
            "cost": self.cost,
        }
        if self.calibrate and self._calibration is not None:
            info["content_free_probs"] = [round(float(p), 4) for p in self._calibration]
        return info
