"""Load, validate and sample labelled examples (few-shot sets, built-in tasks, the embedded demo task).

`load(source)` reads CSV / TSV / JSONL / JSON / Parquet files (optionally .gz/.bz2/.xz), a `datasets` folder saved
with `save_to_disk`, or a Hub dataset id; `from_frame(df)` takes a DataFrame. Both go through one validation pass
that drops nothing silently: every dropped row is counted in `LoadReport.dropped` with its row number.
Row numbers count data rows from 1, not counting a header (JSONL: the line number).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cod.config import DataConfig
from cod.data.formats import (  # LoadReport is part of this module's API
    _COMPRESSED,
    FILE_SUFFIXES,
    LoadReport,
    check_rows,
    read_file,
    read_hub,
    read_saved,
    row_list,
)
from cod.data.labels import (
    LABEL_COLUMNS,
    cached_key,
    check_rare,
    explicit_index,
    folding_note,
    infer_names,
    no_label_column,
)
from cod.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


@dataclass(frozen=True)
class Example:
    """One labelled text (label is an index into the task's `label_names`)."""

    text: str
    label: int
    text_pair: str | None = None


@dataclass
class LabelledData:
    """Examples with an explicit label set, plus the report of how they were read."""

    examples: list[Example]
    label_names: list[str]
    report: LoadReport
    text_column: str = "text"
    label_column: str = "label"
    text_pair_column: str | None = None
    row_numbers: list[int] = field(default_factory=list)  # source row of each example

    def __len__(self) -> int:
        return len(self.examples)

    def label_counts(self) -> dict[str, int]:
        """Examples per label name, in label order."""
        counts = Counter(e.label for e in self.examples)
        return {name: counts.get(i, 0) for i, name in enumerate(self.label_names)}

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame with row, text, (text_pair,) label (name) and label_id columns."""
        import pandas as pd

        rows = self.row_numbers or list(range(1, len(self.examples) + 1))
        df = pd.DataFrame({"row": rows, "text": [e.text for e in self.examples]})
        if self.text_pair_column is not None:
            df["text_pair"] = [e.text_pair for e in self.examples]
        df["label"] = [self.label_names[e.label] for e in self.examples]
        df["label_id"] = [e.label for e in self.examples]
        return df


@dataclass
class TaskSplits:
    """A task's train / validation / test splits; test is only ever evaluated."""

    name: str
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    label_names: list[str]
    description: str = ""


# ----------------------------------------------------------------------------------------------- reading sources


def load(source: str | Path, config: DataConfig | None = None) -> LabelledData:
    """Read labelled examples from a file, a `save_to_disk` folder or a Hub dataset id, and validate them."""
    config = config or DataConfig()
    path = Path(source).expanduser()
    if path.is_dir():
        df, class_names, report = read_saved(path, config)
    elif path.is_file():
        df, class_names, report = read_file(path, config)
    elif _looks_like_path(str(source)):
        relative = "" if path.is_absolute() else f" (relative paths start at {Path.cwd()})"
        raise DataError(f"File {str(source)!r} not found: check the path{relative}.")
    else:
        df, class_names, report = read_hub(str(source), config)
    return _build(df, config, report, class_names)


def from_frame(
    df: pd.DataFrame, config: DataConfig | None = None, source: str = "", label_names: Sequence[str] | None = None
) -> LabelledData:
    """Validate a DataFrame (an upload, a store table) into labelled examples; `label_names` fixes the label order."""
    config = config or DataConfig()
    report = LoadReport(source=source or "a table", format="dataframe")
    check_rows(report.source, len(df), config)
    if label_names is not None:
        config = config.replace(label_names=tuple(label_names))
    return _build(df.reset_index(drop=True), config, report, {})


def load_texts(source: str | Path, text_column: str | None = None, config: DataConfig | None = None) -> list[str]:
    """The non-empty texts of an unlabelled file (a text column; any label column is ignored), in file order."""
    config = config or DataConfig()
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(f"File {str(source)!r} not found: give a file of texts (CSV, JSONL, ...) with a text column.")
    df, _, report = read_file(path, config)
    columns = [str(c) for c in df.columns]
    by_key = {_key(c): c for c in reversed(columns)}
    wanted = text_column or config.text_column
    if wanted is not None:
        column = by_key.get(_key(wanted))
        if column is None:
            raise DataError(f"{report.source} has no text column {wanted!r}; its columns are {columns}: choose one.")
    else:
        column = next((by_key[k] for k in TEXT_COLUMNS if k in by_key), columns[0] if len(columns) == 1 else None)
    if column is None:
        raise DataError(
            f"{report.source} has no column named like a text ({', '.join(TEXT_COLUMNS[:4])}, ...) among "
            f"{columns}: name it with --unlabelled-column (or rename it to 'text')."
        )
    texts = [t for t in (_as_text(v) for v in df[column].tolist()) if t]
    if not texts:
        raise DataError(f"{report.source}: the column {column!r} holds no text.")
    return texts


def _looks_like_path(source: str) -> bool:
    suffixes = [s.lower() for s in Path(source).suffixes]
    return (
        source.startswith(("/", ".", "~"))
        or "\\" in source
        or any(s in FILE_SUFFIXES or s in _COMPRESSED for s in suffixes)
    )


# ------------------------------------------------------------------------------------------------- columns

TEXT_COLUMNS = (
    "text",
    "sentence",
    "review",
    "content",
    "review_text",
    "reviewtext",
    "review_body",
    "body",
    "comment",
    "document",
    "tweet",
    "utterance",
    "message",
    "input",
    "text_a",
    "sentence1",
    "premise",
    "question1",
    "description",
    "abstract",
    "title",
)
PAIR_COLUMNS = (
    ("sentence1", "sentence2"),
    ("text_a", "text_b"),
    ("premise", "hypothesis"),
    ("question1", "question2"),
    ("question", "sentence"),
    ("text", "text_pair"),
)


def _key(name: str) -> str:
    return re.sub(r"[\s\-_.]+", "_", str(name).strip().lower())


def _resolve_columns(df: pd.DataFrame, config: DataConfig, report: LoadReport) -> tuple[str, str | None, str]:
    columns = [str(c) for c in df.columns]
    by_key = {}
    for c in columns:
        by_key.setdefault(_key(c), c)
    source = report.source

    def pick(wanted: str | None, what: str, option: str) -> str | None:
        if wanted is None:
            return None
        if wanted in columns:
            return wanted
        if _key(wanted) in by_key:
            return by_key[_key(wanted)]
        raise DataError(
            f"{source} has no {what} column {wanted!r}; its columns are {columns}: choose one with {option}."
        )

    text = pick(config.text_column, "text", "--text-column")
    pair = pick(config.text_pair_column, "text pair", "--pair-column")
    label = pick(config.label_column, "label", "--label-column")
    if text is None:
        for a, b in PAIR_COLUMNS:
            if a in by_key and b in by_key and by_key[b] != label:
                text, pair = by_key[a], pair or by_key[b]
                break
    if text is None:
        text = next((by_key[k] for k in TEXT_COLUMNS if k in by_key and by_key[k] != label), None)
    if label is None:
        label = next((by_key[k] for k in LABEL_COLUMNS if k in by_key and by_key[k] not in (text, pair)), None)
    guessed = []
    if text is None:
        text, guessed = _guess_text(df, pair, label), ["text"]
    if text is None:
        raise DataError(
            f"{source} has no text column among {columns}: name one with --text-column (or rename it to 'text')."
        )
    if label is None:  # only ever from a label-like name or the user's choice, never from content
        raise no_label_column(source, columns)
    if len({text, label, pair} - {None}) < 2 + (pair is not None):
        raise DataError(
            f"{source}: the text, pair and label columns must differ, "
            f"got text={text!r}, pair={pair!r}, label={label!r}."
        )
    how = f" (guessed from content: {', '.join(guessed)})" if guessed else ""
    report.notes.append(
        f"Columns: text {text!r}" + (f", text pair {pair!r}" if pair else "") + f", label {label!r}{how}."
    )
    return text, pair, label


def _guess_text(df: pd.DataFrame, pair: str | None, label: str | None) -> str | None:
    """Without a known name, the text is the column with the longest strings (at least 8 characters on average)."""
    free = [c for c in df.columns if c not in (pair, label)]
    sample = df.head(500)
    lengths = {c: sample[c].map(lambda v: len(v) if isinstance(v, str) else 0).mean() for c in free}
    best = max(lengths, key=lengths.get) if lengths else None
    return str(best) if best is not None and lengths[best] >= 8 else None


# ----------------------------------------------------------------------------------------------- validation

_BINARY = re.compile(r"[\x00-\x08\x0e-\x1f]")


def _as_text(value: Any) -> str | None:
    """Stripped text, '' for missing, None for binary content."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    text = str(value).strip()
    if text.isprintable():  # the common case, checked in C
        return text
    return None if len(_BINARY.findall(text)) > max(2, len(text) // 20) or "\x00" in text else text


def _build(df: pd.DataFrame, config: DataConfig, report: LoadReport, class_names: dict) -> LabelledData:
    """Map columns, normalise labels and validate: the single path every source goes through."""
    source = report.source
    if not all(isinstance(c, str) for c in df.columns):
        df = df.copy()
        df.columns = [str(c) for c in df.columns]
    report.columns = list(df.columns)
    repeated = sorted({c for c in report.columns if report.columns.count(c) > 1})
    if repeated:
        raise DataError(f"{source} has more than one column named {repeated}: rename them so each name is unique.")
    report.rows_read = len(df)
    if len(df) == 0:
        raise DataError(f"{source} has columns {report.columns} but no rows: add labelled rows.")
    text_col, pair_col, label_col = _resolve_columns(df, config, report)
    numbers = (
        [int(i) for i in df.index]
        if report.format in {"jsonl", "json", "parquet", "datasets", "hub"}
        else list(range(1, len(df) + 1))
    )

    # 1. texts and raw labels; rows without either are dropped and counted
    rows = []  # (row number, text, pair, label key)
    label_keys: dict = {}  # raw label -> key: a column holds few distinct labels
    raw_labels: dict[int, Any] = {}  # row number -> raw label, for the report of what normalisation changed
    pairs = df[pair_col].tolist() if pair_col else [None] * len(df)
    for row, text, pair, raw in zip(numbers, df[text_col].tolist(), pairs, df[label_col].tolist()):
        text = _as_text(text)
        pair = _as_text(pair) if pair_col else None
        if text is None or (pair_col and pair is None):
            report.drop("binary content", row)
        elif text == "":
            report.drop("empty text", row)
        elif pair_col and pair == "":
            report.drop("empty text pair", row)
        elif (key := cached_key(raw, label_keys)) is None:
            report.drop("missing label", row)
        else:
            rows.append((row, text, pair, key))
            raw_labels[row] = raw
    if not rows:
        reasons = ", ".join(f"{r} {n}" for r, n in report.dropped.items())
        raise DataError(
            f"{source}: all {len(df)} rows were dropped ({reasons}): "
            f"check the text column {text_col!r} and label column {label_col!r}."
        )

    # 2. the label set: explicit (config or the dataset's ClassLabel names) or inferred from the values
    explicit = list(config.label_names) if config.label_names else class_names.get(label_col)
    if explicit:
        names, kept = list(explicit), []
        for row, text, pair, key in rows:
            try:
                index = explicit_index(key, names, label_col in class_names and not config.label_names)
            except KeyError:
                raise DataError(
                    f"{source} row {row}: label {key!r} is not one of the label names {names}"
                    f"{' (or 0..' + str(len(names) - 1) + ')' if isinstance(key, int) else ''}: "
                    "fix the row or the label names."
                ) from None
            if index is None:
                report.drop("no label (-1)", row)
            else:
                kept.append((row, text, pair, index))
    else:
        rows = check_rare(rows, config, label_col, report.source, report.drop)
        names, index, note = infer_names({key for *_, key in rows})
        if note:
            report.notes.append(note)
        kept = [(row, text, pair, index[key]) for row, text, pair, key in rows]
        if len(rows) >= 20 and len(names) > len(rows) / 2:
            raise DataError(
                f"{source}: the label column {label_col!r} has {len(names)} different values in {len(rows)} rows "
                f"(e.g. {names[:3]}): it does not look like a label column. Choose another with --label-column."
            )

    note = folding_note((raw_labels[row], names[index]) for row, *_, index in kept)
    if note:
        report.notes.append(note)

    # 3. one class only, truncation, duplicates
    counts = Counter(index for *_, index in kept)
    if len(counts) < 2:
        only = names[next(iter(counts))]
        raise DataError(
            f"{source}: every kept row has the label {only!r} ({len(kept)} rows): "
            "a classifier needs at least two classes. "
            f"Check the label column {label_col!r} or add examples of the other class(es)."
        )
    missing = [n for i, n in enumerate(names) if i not in counts]
    if missing:
        report.warnings.append(f"The label(s) {missing} have no examples in {source}.")
    examples, row_numbers, seen = [], [], {}
    for row, text, pair, index in kept:
        if len(text) > config.max_chars:
            text = text[: config.max_chars]
            report.truncated_rows.append(row)
        first = seen.get((text, pair))
        if first is not None:
            report.duplicates += 1
            report.duplicate_rows.append(row)
            if first[1] != index:
                report.conflicting_rows.append(row)
            if config.drop_duplicates:
                report.drop("duplicate", row)
                continue
        else:
            seen[(text, pair)] = (row, index)
        examples.append(Example(text, index, pair))
        row_numbers.append(row)
    if report.truncated_rows:
        report.warnings.append(
            f"{len(report.truncated_rows)} text(s) longer than {config.max_chars} characters were truncated "
            f"({row_list(report.truncated_rows)}): raise max_chars (--max-chars) to keep them whole."
        )
    if report.conflicting_rows:
        report.warnings.append(
            f"{len(report.conflicting_rows)} repeated text(s) carry a different label than their first occurrence "
            f"({row_list(report.conflicting_rows)}): fix or remove them."
        )
    final = Counter(e.label for e in examples)
    report.label_counts = {n: final.get(i, 0) for i, n in enumerate(names)}
    return LabelledData(examples, names, report, text_col, label_col, pair_col, row_numbers)
