"""Per-user page state: a small dataclass held in `gr.State` (no gradio import, no models: those are process-level)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cod.counterfactuals.base import Counterfactual
    from cod.data import Example, LabelledData

PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
UNDO_LIMIT = 200  # snapshots kept per session; older ones fall off (the store keeps the full history)


@dataclass
class Pair:
    """One real example of the few-shot draw and its counterfactual under review."""

    cf: "Counterfactual"
    status: str = PENDING
    store_id: int | None = None  # the store's counterfactual id once saved


@dataclass
class PageState:
    """What one browser session is working on: data, draw, models, curation and runs."""

    source: str = ""  # built-in task name or uploaded file name
    source_path: str = ""  # the uploaded file on disk ("" for built-in tasks)
    mapping: dict[str, str | None] = field(default_factory=dict)  # text / text_pair / label column
    data: "LabelledData | None" = None  # training pool (upload or task train split)
    validation: list["Example"] = field(default_factory=list)
    test: list["Example"] = field(default_factory=list)
    label_names: list[str] = field(default_factory=list)
    k: int = 16
    seed: int = 0
    few_shot: list["Example"] = field(default_factory=list)  # the full seeded k draw (classes interleaved)
    teacher: str = "demo"
    student: str = "demo"
    project_id: int | None = None
    pairs: list[Pair] = field(default_factory=list)
    selected: int | None = None  # index into pairs
    undo: list[list[Pair]] = field(default_factory=list)
    redo: list[list[Pair]] = field(default_factory=list)
    cf_job: str | None = None  # worker job ids this session started
    run_job: str | None = None
    run_id: Any = None  # the last distillation run (store id or result key)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def real_half(self) -> list["Example"]:
        """CoD's real half: the first k/2 of the seeded draw (classes interleaved, so still balanced)."""
        return self.few_shot[: len(self.few_shot) // 2]

    def snapshot(self) -> None:
        """Remember the pairs before a change, for undo; a new change clears redo."""
        self.undo.append(copy.deepcopy(self.pairs))
        del self.undo[:-UNDO_LIMIT]
        self.redo.clear()

    def undo_change(self) -> bool:
        """Go back one change; False when there is nothing to undo."""
        if not self.undo:
            return False
        self.redo.append(copy.deepcopy(self.pairs))
        self.pairs = self.undo.pop()
        return True

    def redo_change(self) -> bool:
        """Re-apply one undone change; False when there is nothing to redo."""
        if not self.redo:
            return False
        self.undo.append(copy.deepcopy(self.pairs))
        self.pairs = self.redo.pop()
        return True

    def counts(self) -> dict[str, int]:
        """Pairs by status, plus flipped."""
        out = {PENDING: 0, ACCEPTED: 0, REJECTED: 0, "flipped": 0}
        for p in self.pairs:
            out[p.status] += 1
            out["flipped"] += int(p.cf.flipped)
        return out

    def accepted(self) -> list["Counterfactual"]:
        """The counterfactuals a person accepted, in draw order."""
        return [p.cf for p in self.pairs if p.status == ACCEPTED]
