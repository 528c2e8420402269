"""Per-user page state: a small dataclass held in `gr.State` (no gradio import, no models: those are process-level).

Curation itself lives in the project store (every action is committed when it happens); the page state only
remembers which project this session has open and what is selected, so a reload reopens it by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cod.data.readers import Example, LabelledData
    from cod.experiment import Source, Splits


@dataclass
class PageState:
    """What one browser session is working on: data, draw, models, the open project and its jobs."""

    source: str = ""  # built-in task name or uploaded file name
    source_path: str = ""  # the uploaded file on disk ("" for built-in tasks)
    mapping: dict[str, str | None] = field(default_factory=dict)  # text / text_pair / label column
    data: LabelledData | None = None  # training pool (upload or task train split)
    validation: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)
    label_names: list[str] = field(default_factory=list)
    k: int = 16
    seed: int = 0
    few_shot: list[Example] = field(default_factory=list)  # the full seeded k draw (classes interleaved)
    source_obj: Source | None = None  # the experiment core's source (task or file, with given held-out data)
    splits: Splits | None = None  # the current draw and its held-out data
    teacher: str = "demo"
    student: str = "demo"
    project: str | None = None  # the store project holding this session's curation
    rows: list[int] = field(default_factory=list)  # counterfactual ids in review-table order
    selected: int | None = None  # the counterfactual id open in the editor
    cf_job: str | None = None  # worker job ids this session started
    run_job: str | None = None
    run_key: str | None = None  # the last distillation run (its key in Services.results)
    owner: str = ""  # who this session is: '' locally; 'hf:<user>' or 'anon:<id>' in public mode (set on page load)
    extra: dict[str, Any] = field(default_factory=dict)

    def show_source(self, source: Source) -> None:
        """Point the session at a source (a task or a file); the draw comes with `show_splits`."""
        from cod.data.readers import LabelledData

        self.source_obj = source
        self.source, self.source_path = source.name, source.path
        self.mapping = {"text": None, "label": None, "text_pair": None, **source.columns} if source.path else {}
        self.data = source.data or LabelledData(list(source.pool), list(source.label_names), source.report)
        self.label_names = list(source.label_names)
        self.validation, self.test, self.few_shot, self.splits = [], list(source.test), [], None
        self.extra["task_description"] = source.description

    def show_splits(self, splits: Splits) -> None:
        """Take a draw and its held-out data (a new draw starts a new project, made on the first save)."""
        self.splits, self.k, self.seed = splits, splits.k, splits.seed
        self.few_shot, self.validation, self.test = list(splits.few_shot), list(splits.validation), list(splits.test)
        self.project, self.rows, self.selected = None, [], None

    @property
    def real_half(self) -> list[Example]:
        """CoD's real half: the first k/2 of the seeded draw (`cod.data.splits.cod_real_half`)."""
        from cod.data.splits import cod_real_half

        return cod_real_half(self.few_shot)

    def select_row(self, row: int) -> int | None:
        """Open the counterfactual shown on table row `row` (clamped); returns its id."""
        if not self.rows:
            self.selected = None
        else:
            self.selected = self.rows[max(0, min(int(row), len(self.rows) - 1))]
        return self.selected

    def step(self, delta: int) -> int | None:
        """Open the previous (-1) or next (+1) row."""
        if not self.rows:
            return None
        i = self.rows.index(self.selected) if self.selected in self.rows else -delta
        return self.select_row((i + delta) % len(self.rows))
