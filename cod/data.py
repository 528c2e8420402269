"""Load, validate and sample labelled examples (few-shot sets, built-in tasks, the embedded demo task)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """One labelled text (label is an index into the task's `label_names`)."""

    text: str
    label: int
    text_pair: str | None = None


@dataclass
class LoadReport:
    """What validation found: nothing is dropped silently."""

    source: str
    rows_read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows dropped
    warnings: list[str] = field(default_factory=list)
    duplicates: int = 0


@dataclass
class LabelledData:
    """Examples with an explicit label set, plus the report of how they were read."""

    examples: list[Example]
    label_names: list[str]
    report: LoadReport
    text_column: str = "text"
    label_column: str = "label"
    text_pair_column: str | None = None


@dataclass
class TaskSplits:
    """A task's train / validation / test splits; test is only ever evaluated."""

    name: str
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    label_names: list[str]
    description: str = ""
