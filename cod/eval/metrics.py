"""Held-out evaluation of a teacher and a student: accuracy, macro-F1, agreement, mean KL, calibration.

Metric functions are plain functions over arrays. Anything that scores texts is a *scorer*: an object with
`predict_proba(texts) -> (n, num_labels)` (the `Teacher`, a `StudentScorer`), a `(model, tokenizer)` pair, or a
function `texts -> probs`; `as_scorer` turns each into the first kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cod.errors import ModelError

EPS = 1e-12


# ----------------------------------------------------------------------------- metrics over arrays


def accuracy(labels: Sequence[int], preds: Sequence[int]) -> float:
    """Share of predictions equal to the labels (NaN for none)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    return float((labels == preds).mean()) if labels.size else float("nan")


def macro_f1(labels: Sequence[int], preds: Sequence[int]) -> float:
    """Unweighted mean F1 over the classes present in labels or predictions (as scikit-learn computes it)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    if not labels.size:
        return float("nan")
    scores = []
    for c in np.union1d(labels, preds):
        tp = float(((preds == c) & (labels == c)).sum())
        fp = float(((preds == c) & (labels != c)).sum())
        fn = float(((preds != c) & (labels == c)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def agreement(preds_a: Sequence[int], preds_b: Sequence[int]) -> float:
    """Share of texts on which two models predict the same class."""
    return accuracy(preds_a, preds_b)


def mean_kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over rows of KL(p || q) in nats; p, q are (n, num_labels) probabilities."""
    p = np.clip(np.asarray(p, dtype=float), EPS, 1.0)
    q = np.clip(np.asarray(q, dtype=float), EPS, 1.0)
    if not p.size:
        return float("nan")
    return float((p * (np.log(p) - np.log(q))).sum(axis=1).mean())


def expected_calibration_error(probs: np.ndarray, labels: Sequence[int], n_bins: int = 15) -> float:
    """ECE: bin predictions by confidence (equal-width bins), average |accuracy - confidence| weighted by bin size."""
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels)
    if not labels.size:
        return float("nan")
    conf = probs.max(axis=1)  # (n,)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    # Bin i holds confidences in (i/n, (i+1)/n]; a confidence of exactly 0 joins the first bin.
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        mask = bins == b
        ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


# ----------------------------------------------------------------------------- scorers


class StudentScorer:
    """A `(model, tokenizer)` sequence classifier scored like the teacher: batched, no grad, cached by text."""

    def __init__(self, model, tokenizer, max_length: int = 128, batch_size: int = 32):
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        config = model.config
        self.label_names = [str(config.id2label[i]) for i in range(config.num_labels)]
        self._logits: dict[str, np.ndarray] = {}  # text -> (num_labels,)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits, (n, num_labels); texts already scored are not run again."""
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._logits))
        if missing:
            self._forward(missing)
        if not texts:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        return np.stack([self._logits[t] for t in texts])

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, (n, num_labels)."""
        from cod.modeling.inference import softmax

        return softmax(self.logits(texts))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted class indices, (n,)."""
        return self.logits(texts).argmax(axis=1)

    def _forward(self, texts: list[str]) -> None:
        from cod.modeling.inference import predict_logits

        logits = predict_logits(self.model, self.tokenizer, texts, self.max_length, self.batch_size)
        self._logits.update(zip(texts, logits))


class _FunctionScorer:
    def __init__(self, fn: Callable[[list[str]], Any]):
        self.fn = fn

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.fn(list(texts)), dtype=float)


def as_scorer(obj: Any):
    """A scorer from a Teacher / scorer, a `(model, tokenizer)` pair, a DistillResult, or a `texts -> probs`
    function."""
    if hasattr(obj, "predict_proba"):
        return obj
    if hasattr(obj, "model") and hasattr(obj, "tokenizer"):  # a DistillResult
        return StudentScorer(obj.model, obj.tokenizer)
    if isinstance(obj, tuple) and len(obj) == 2:
        return StudentScorer(*obj)
    if callable(obj):
        return _FunctionScorer(obj)
    raise ModelError(
        f"Cannot score texts with {type(obj).__name__}: pass a Teacher, a (model, tokenizer) pair, "
        "or a function from a list of texts to an (n, num_labels) array of probabilities."
    )


def scorer_probs(scorer: Any, texts: Sequence[str], num_labels: int | None = None) -> np.ndarray:
    """Probabilities (n, num_labels) from any scorer, checked for shape."""
    probs = np.asarray(as_scorer(scorer).predict_proba(list(texts)), dtype=float)
    if probs.ndim != 2 or probs.shape[0] != len(texts) or (num_labels and probs.shape[1] != num_labels):
        raise ModelError(
            f"A scorer returned probabilities of shape {probs.shape} for {len(texts)} texts"
            + (f" and {num_labels} labels" if num_labels else "")
            + ": check that the model's labels match the task's."
        )
    return probs


# ----------------------------------------------------------------------------- evaluation


def evaluate(
    teacher: Any,
    student: Any,
    examples: Sequence,
    label_names: Sequence[str],
    teacher_probs: np.ndarray | None = None,
    n_bins: int = 15,
) -> dict[str, float]:
    """Teacher and student metrics on held-out `examples`: accuracy, macro-F1, ECE, agreement, mean KL(t || s),
    and the share of each class in the student's predictions (a collapse onto one class shows here)."""
    names = list(label_names)
    texts = [e.text for e in examples]
    labels = np.array([e.label for e in examples], dtype=int)
    t_probs = teacher_probs if teacher_probs is not None else scorer_probs(teacher, texts, len(names))
    s_probs = scorer_probs(student, texts, len(names))
    t_pred, s_pred = t_probs.argmax(axis=1), s_probs.argmax(axis=1)
    metrics: dict[str, float] = {"n": len(texts)}
    for who, probs, pred in (("teacher", t_probs, t_pred), ("student", s_probs, s_pred)):
        metrics[f"{who}_accuracy"] = accuracy(labels, pred)
        metrics[f"{who}_macro_f1"] = macro_f1(labels, pred)
        metrics[f"{who}_ece"] = expected_calibration_error(probs, labels, n_bins)
    metrics["agreement"] = agreement(t_pred, s_pred)
    metrics["mean_kl"] = mean_kl(t_probs, s_probs)
    for i, name in enumerate(names):
        metrics[f"student_share_{name}"] = float((s_pred == i).mean()) if len(texts) else float("nan")
    return metrics


def evaluation_table(metrics: dict[str, float]) -> pd.DataFrame:
    """The metrics of `evaluate` as a table: one row per model (teacher, student)."""
    rows = []
    for who in ("teacher", "student"):
        rows.append(
            {
                "model": who,
                "accuracy": metrics.get(f"{who}_accuracy"),
                "macro_f1": metrics.get(f"{who}_macro_f1"),
                "ece": metrics.get(f"{who}_ece"),
                "agreement_with_teacher": 1.0 if who == "teacher" else metrics.get("agreement"),
                "kl_from_teacher": 0.0 if who == "teacher" else metrics.get("mean_kl"),
            }
        )
    return pd.DataFrame(rows)
