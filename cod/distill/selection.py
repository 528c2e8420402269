"""Checkpoint selection: which held-out texts choose the checkpoint, and when patience runs out.

  validation          a labelled held-out set: accuracy (or macro-F1) against its labels
  teacher_agreement   unlabelled texts: the same metrics against the teacher's argmax on them
  last_step           neither: the fixed schedule runs to its end and the last step is kept
A held-out text that is also a training text is left out and counted: nothing is ever selected on training data.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cod.data.readers import Example
from cod.errors import DistillError

log = logging.getLogger(__name__)

# Prefix of the metrics each mode reports (eval events and the run's metrics).
PREFIX = {"validation": "val", "teacher_agreement": "agreement", "last_step": ""}


@dataclass
class HeldOut:
    """The texts checkpoints are chosen on, with their reference labels (gold, or the teacher's argmax)."""

    mode: str  # validation | teacher_agreement | last_step
    texts: list[str] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # (n,)
    dropped: int = 0  # held-out texts left out because they are training texts

    def sizes(self) -> dict[str, int]:
        """validation_size / unlabelled_size for metrics.json (the one not used is 0)."""
        n = len(self.texts)
        return {
            "validation_size": n if self.mode == "validation" else 0,
            "unlabelled_size": n if self.mode == "teacher_agreement" else 0,
            "held_out_training_overlap_dropped": self.dropped,
        }


def held_out(
    validation: Sequence[Example] | None,
    unlabelled: Sequence[str] | None,
    teacher,
    train_texts: Sequence[str],
    limit: int = 0,
) -> HeldOut:
    """Validation when given, else the unlabelled texts with the teacher's labels, else nothing (last step)."""
    train = set(train_texts)
    if validation:
        kept = [e for e in validation if e.text not in train]
        kept = kept[:limit] if limit else kept
        chosen = HeldOut("validation", [e.text for e in kept], np.array([int(e.label) for e in kept], dtype=int))
        chosen.dropped = sum(e.text in train for e in validation)
    elif unlabelled:
        if teacher is None:
            raise DistillError(
                "Selecting on unlabelled texts needs a teacher (its argmax is the reference): "
                "load a teacher, or give labelled validation data instead."
            )
        texts = [t for t in dict.fromkeys(unlabelled) if t not in train]
        texts = texts[:limit] if limit else texts
        labels = teacher.predict(texts) if texts else np.zeros(0, dtype=int)
        chosen = HeldOut("teacher_agreement", texts, np.asarray(labels, dtype=int))
        chosen.dropped = sum(t in train for t in dict.fromkeys(unlabelled))
    else:
        return HeldOut("last_step")
    if chosen.dropped:
        log.warning("%d held-out texts are training texts: left out of checkpoint selection.", chosen.dropped)
    if not chosen.texts:
        raise DistillError(
            f"Every {chosen.mode.replace('_', ' ')} text is also a training text: "
            "give held-out texts that are not in the training set, or none (the last step is kept)."
        )
    return chosen


def selection_metrics(preds: np.ndarray, held: HeldOut, label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy (with its 95% Wilson interval), macro-F1 and each class's predicted share, under the mode's prefix."""
    from cod.eval.metrics import accuracy, macro_f1
    from cod.eval.stats import wilson_interval

    p = PREFIX[held.mode]
    correct = int((preds == held.labels).sum())
    metrics: dict[str, Any] = {
        f"{p}_accuracy": accuracy(held.labels, preds),
        f"{p}_accuracy_ci95": list(wilson_interval(correct, len(preds))),
        f"{p}_macro_f1": macro_f1(held.labels, preds),
    }
    for i, name in enumerate(label_names):  # a collapse onto one class shows here
        metrics[f"{p}_share_{name}"] = float((preds == i).mean())
    return metrics


@dataclass
class Selection:
    """The best evaluation so far and the evaluations since it improved (patience)."""

    held: HeldOut
    metric: str = "accuracy"  # accuracy | macro_f1
    patience: int = 0  # evaluations without improvement before stopping; 0: never stop early
    best_score: float = -math.inf
    best_step: int = 0
    best_metrics: dict[str, Any] = field(default_factory=dict)
    stale: int = 0

    @property
    def active(self) -> bool:
        """Whether there is anything to evaluate on (not `last_step`)."""
        return self.held.mode != "last_step"

    @property
    def exhausted(self) -> bool:
        """Patience ran out: `patience` evaluations in a row did not improve on the best."""
        return bool(self.patience) and self.stale >= self.patience

    def update(self, step: int, metrics: dict[str, Any]) -> bool:
        """Record one evaluation; True when it is the new best (ties keep the earlier step)."""
        score = metrics[f"{PREFIX[self.held.mode]}_{self.metric}"]
        if score > self.best_score:
            self.best_score, self.best_step, self.best_metrics, self.stale = score, step, metrics, 0
            return True
        self.stale += 1
        return False

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint saves to resume the selection."""
        return {
            "best_score": self.best_score,
            "best_step": self.best_step,
            "best_metrics": self.best_metrics,
            "stale": self.stale,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`."""
        self.best_score, self.best_step = state["best_score"], state["best_step"]
        self.best_metrics, self.stale = state["best_metrics"], state["stale"]

    def summary(self, last_step: int) -> dict[str, Any]:
        """metrics.json's account of the choice: mode, sizes, chosen step, its held-out scores with intervals."""
        out: dict[str, Any] = {
            "selection": self.held.mode,
            **self.held.sizes(),
            "best_step": self.best_step if self.active else last_step,
            "student_validation_accuracy": None,
            "student_validation_macro_f1": None,
        }
        if self.held.mode == "validation":
            m = self.best_metrics
            out.update(
                student_validation_accuracy=m.get("val_accuracy"),
                student_validation_macro_f1=m.get("val_macro_f1"),
                student_validation_accuracy_ci95=m.get("val_accuracy_ci95"),
            )
        elif self.held.mode == "teacher_agreement":
            m = self.best_metrics
            out.update(
                student_teacher_agreement=m.get("agreement_accuracy"),
                student_teacher_agreement_ci95=m.get("agreement_accuracy_ci95"),
            )
        return out
