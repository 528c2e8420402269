"""The counterfactual record and the interface every proposer implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cod.counterfactuals import edits as E

if TYPE_CHECKING:  # pragma: no cover
    from cod.data.readers import Example
    from cod.modeling.scoring import Teacher

# on_progress(done, total): proposers call it as examples finish (a progress bar in the CLI, a bar in the UI).
Progress = Callable[[int, int], None]


@dataclass
class Counterfactual:
    """One original example and a proposed minimal edit of it, checked against the teacher.

    Labels are class indices into the task's `label_names`; `to_record` writes them by name.
    `flipped` is the teacher's verdict (its argmax on the counterfactual is `target`), never an assumption.
    """

    text: str
    label: int  # the gold label of the original
    teacher_probs: list[float]  # teacher on the original, (num_labels,)
    counterfactual: str
    target: int  # the class the edit aims for
    counterfactual_teacher_probs: list[float]  # teacher on the counterfactual, (num_labels,)
    proposer: str  # "lexical", "llm", "human", ...
    model: str = ""  # the LLM's name, or the lexicon/search version
    prompt_version: str = ""
    attempts: int = 0  # candidates scored by the teacher
    latency_s: float = 0.0
    tokens: int = 0  # LLM tokens used (prompt + completion)
    error: str = ""  # a per-example failure, worded for the user; the batch goes on
    edits: list[E.Edit] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # proposer-specific notes (search path, scores)
    # SLOR change per token from the original under a small causal LM (`fluency.py`: log-likelihood beyond what
    # word frequency explains): >= 0 reads no worse than the original; None: not scored (or edited since).
    fluency: float | None = None

    def __post_init__(self) -> None:
        if not self.edits and self.counterfactual:
            self.edits = E.diff(self.text, self.counterfactual)

    @property
    def flipped(self) -> bool:
        """The teacher puts the target class strictly ahead of every other on the counterfactual."""
        return bool(self.counterfactual_teacher_probs) and wins(self.counterfactual_teacher_probs, self.target)

    @property
    def teacher_label(self) -> int:
        """The teacher's argmax on the counterfactual: the label the counterfactual is trained with."""
        probs = self.counterfactual_teacher_probs
        return max(range(len(probs)), key=probs.__getitem__)

    @property
    def words_changed(self) -> int:
        """Words touched by the edit."""
        return E.words_changed(self.edits)

    @property
    def edit_distance(self) -> float:
        """Normalised word-level edit distance between original and counterfactual."""
        return E.edit_distance(self.text, self.counterfactual)

    def to_record(self, label_names: Sequence[str]) -> dict[str, Any]:
        """A JSON-friendly dict with labels by name (the JSONL line the CLI writes)."""
        names = list(label_names)
        return {
            "text": self.text,
            "label": names[self.label],
            "teacher_probs": dict(zip(names, self.teacher_probs)),
            "counterfactual": self.counterfactual,
            "target_label": names[self.target],
            "counterfactual_teacher_probs": dict(zip(names, self.counterfactual_teacher_probs)),
            "teacher_label": names[self.teacher_label] if self.counterfactual_teacher_probs else None,
            "flipped": self.flipped,
            "words_changed": self.words_changed,
            "edit_distance": round(self.edit_distance, 4),
            "edits": [e.to_dict() for e in self.edits],
            "proposer": self.proposer,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "attempts": self.attempts,
            "latency_s": round(self.latency_s, 4),
            "tokens": self.tokens,
            "error": self.error,
            "fluency": self.fluency,
            "extra": self.extra,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], label_names: Sequence[str]) -> Counterfactual:
        """Inverse of `to_record`; labels may be names or indices."""
        names = list(label_names)

        def index(value: Any) -> int:
            if isinstance(value, int) and 0 <= value < len(names):
                return value
            if str(value) in names:
                return names.index(str(value))
            from cod.errors import DataError

            raise DataError(f"Label {value!r} is not one of the task's labels {names}: fix the record or the task.")

        def probs(value: Any) -> list[float]:
            if isinstance(value, dict):  # {} : not scored (a failed example)
                return [float(value[n]) for n in names] if value else []
            return [float(p) for p in (value or [])]

        return cls(
            text=record["text"],
            label=index(record["label"]),
            teacher_probs=probs(record.get("teacher_probs")),
            counterfactual=record["counterfactual"],
            target=index(record["target_label"]),
            counterfactual_teacher_probs=probs(record.get("counterfactual_teacher_probs")),
            proposer=record.get("proposer", "unknown"),
            model=record.get("model", ""),
            prompt_version=record.get("prompt_version", ""),
            attempts=int(record.get("attempts", 0)),
            latency_s=float(record.get("latency_s", 0.0)),
            tokens=int(record.get("tokens", 0)),
            error=record.get("error", ""),
            edits=[E.Edit.from_dict(d) for d in record.get("edits", [])],
            extra=dict(record.get("extra", {})),
            fluency=None if record.get("fluency") in (None, "") else float(record["fluency"]),  # CSV: "" is none
        )


_RECORD_FIX = "Each line must be one counterfactual record, as `python -m cod generate` writes it"


def read_counterfactuals(path: str | Path, label_names: Sequence[str]) -> list[Counterfactual]:
    """The counterfactual records of a JSONL file; a bad line is a `DataError` naming the file and line."""
    from cod.io import read_jsonl

    return read_jsonl(path, _RECORD_FIX, lambda record: Counterfactual.from_record(record, label_names))


def write_counterfactuals(
    path: str | Path, counterfactuals: Sequence[Counterfactual], label_names: Sequence[str]
) -> Path:
    """Write the records as JSONL, atomically (read back with `read_counterfactuals`)."""
    from cod.io import write_jsonl

    return write_jsonl(path, (c.to_record(label_names) for c in counterfactuals))


def wins(probs: Sequence[float], target: int) -> bool:
    """The target class is strictly ahead of every other (on a tie the argmax would be arbitrary: no flip)."""
    return all(probs[target] > p for k, p in enumerate(probs) if k != target)


def resolve_targets(target: Any, count: int, names: Sequence[str]) -> list[int | None]:
    """One target class index per example (None: the default), from one index or name for all, or one per example."""
    from cod.errors import ConfigError

    names = list(names)

    def index(t: Any) -> int | None:
        if t is None:
            return None
        if isinstance(t, str):
            if t not in names:
                raise ConfigError(f"Target class {t!r} is not one of the teacher's labels {names}.")
            return names.index(t)
        if isinstance(t, bool) or not (hasattr(t, "__index__") and 0 <= int(t) < len(names)):
            raise ConfigError(
                f"Target class {t!r} is not a class index of the teacher (0..{len(names) - 1}: {names})."
            )
        return int(t)

    if target is None or isinstance(target, str) or hasattr(target, "__index__"):
        return [index(target)] * count
    targets = list(target)
    if len(targets) != count:
        raise ConfigError(
            f"Got {len(targets)} targets for {count} examples: give one per example, one for all, or none."
        )
    return [index(t) for t in targets]


def default_target(probs: Sequence[float]) -> int:
    """The class a counterfactual aims for: binary, the other class than the teacher's; else the runner-up."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    return order[1]


class Proposer(Protocol):
    """Proposes counterfactuals; every candidate is scored by the teacher before it is returned."""

    name: str

    def propose(
        self,
        examples: Sequence[Example],
        teacher: Teacher,
        target: Sequence[int] | int | None = None,
        n: int = 1,
        on_progress: Progress | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> list[Counterfactual]:
        """One counterfactual per example (failed ones carry `error`), in the order given."""
        ...
