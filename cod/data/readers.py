"""Load, validate and sample labelled examples (few-shot sets, built-in tasks, the embedded demo task).

`load(source)` reads CSV / TSV / JSONL / JSON / Parquet files (optionally .gz/.bz2/.xz), a `datasets` folder saved
with `save_to_disk`, or a Hub dataset id; `from_frame(df)` takes a DataFrame. Both go through one validation pass
that drops nothing silently: every dropped row is counted in `LoadReport.dropped` with its row number.
Row numbers count data rows from 1, not counting a header (JSONL: the line number).
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import json
import lzma
import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cod.config import DataConfig
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
from cod.io import json_int, parse_jsonl

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


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
    duplicates: int = 0  # repeated (text, text_pair) occurrences after the first
    format: str = ""  # csv | tsv | jsonl | json | parquet | datasets | hub | dataframe
    encoding: str = ""
    separator: str = ""
    columns: list[str] = field(default_factory=list)  # every column the source has
    dropped_rows: dict[str, list[int]] = field(default_factory=dict)  # reason -> row numbers
    duplicate_rows: list[int] = field(default_factory=list)
    conflicting_rows: list[int] = field(default_factory=list)  # duplicates whose label differs
    truncated_rows: list[int] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # column guesses, label mappings

    @property
    def kept(self) -> int:
        """Rows that became examples."""
        return self.rows_read - sum(self.dropped.values())

    def drop(self, reason: str, row: int) -> None:
        """Count one dropped row under `reason`."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.dropped_rows.setdefault(reason, []).append(row)

    def lines(self) -> list[str]:
        """Human-readable lines: what was read, kept, dropped, duplicated, and every warning."""
        where = f" ({', '.join(x for x in (self.format.upper(), _sep_name(self.separator), self.encoding) if x)})"
        out = [f"Read {self.rows_read:,} rows from {self.source}{where if where != ' ()' else ''}."]
        out += self.notes
        counts = ", ".join(f"{name}: {n:,}" for name, n in self.label_counts.items())
        out.append(f"Kept {self.kept:,} examples in {len(self.label_counts)} classes: {counts}.")
        if self.dropped:
            parts = [
                f"{reason} {n:,} ({_rows(self.dropped_rows.get(reason, []))})" for reason, n in self.dropped.items()
            ]
            out.append(f"Dropped {sum(self.dropped.values()):,} rows: " + "; ".join(parts) + ".")
        else:
            out.append("Dropped no rows.")
        if self.duplicates:
            fate = "dropped" if "duplicate" in self.dropped else "kept"
            out.append(f"Duplicates: {self.duplicates:,} repeated texts ({_rows(self.duplicate_rows)}), {fate}.")
        else:
            out.append("Duplicates: none.")
        out += [f"Warning: {w}" for w in self.warnings]
        return out

    def summary(self) -> str:
        """`lines()` joined with newlines."""
        return "\n".join(self.lines())

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (for `data inspect --json` and the store)."""
        d = dict(self.__dict__)
        d["kept"] = self.kept
        return d


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

FILE_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_CHUNK = 1 << 20  # compressed files are read 1 MiB at a time, counting
_MB = 2**20
_SEPARATORS = (",", "\t", ";", "|")


def load(source: str | Path, config: DataConfig | None = None) -> LabelledData:
    """Read labelled examples from a file, a `save_to_disk` folder or a Hub dataset id, and validate them."""
    config = config or DataConfig()
    path = Path(source).expanduser()
    if path.is_dir():
        df, class_names, report = _read_saved(path, config)
    elif path.is_file():
        df, class_names, report = _read_file(path, config)
    elif _looks_like_path(str(source)):
        relative = "" if path.is_absolute() else f" (relative paths start at {Path.cwd()})"
        raise DataError(f"File {str(source)!r} not found: check the path{relative}.")
    else:
        df, class_names, report = _read_hub(str(source), config)
    return _build(df, config, report, class_names)


def from_frame(
    df: pd.DataFrame, config: DataConfig | None = None, source: str = "", label_names: Sequence[str] | None = None
) -> LabelledData:
    """Validate a DataFrame (an upload, a store table) into labelled examples; `label_names` fixes the label order."""
    config = config or DataConfig()
    report = LoadReport(source=source or "a table", format="dataframe")
    _check_rows(report.source, len(df), config)
    if label_names is not None:
        config = config.replace(label_names=tuple(label_names))
    return _build(df.reset_index(drop=True), config, report, {})


def load_texts(source: str | Path, text_column: str | None = None, config: DataConfig | None = None) -> list[str]:
    """The non-empty texts of an unlabelled file (a text column; any label column is ignored), in file order."""
    config = config or DataConfig()
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(f"File {str(source)!r} not found: give a file of texts (CSV, JSONL, ...) with a text column.")
    df, _, report = _read_file(path, config)
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


# ------------------------------------------------------------------------------------------------- limits

_SETTINGS = {  # setting -> (CLI flag, environment variable)
    "max_file_mb": ("--max-file-mb", "COD_MAX_FILE_MB"),
    "max_rows": ("--max-rows", "COD_MAX_ROWS"),
    "max_decompressed_mb": ("--max-decompressed-mb", "COD_MAX_DECOMPRESSED_MB"),
}


def _over_limit(name: str, found: str, limit: str, setting: str) -> DataError:
    """The one message for every limit: the file, what was found, the limit, and the setting that raises it."""
    flag, env = _SETTINGS[setting]
    return DataError(
        f"{name} {found}, above the limit of {limit}: raise {setting} ({flag}, or {env} for the app) "
        f"to load it, or load a sample of the file."
    )


def _check_rows(name: str, rows: int, config: DataConfig, exact: bool = True) -> None:
    if rows > config.max_rows:
        found = f"has {rows:,} data rows" if exact else f"has more than {config.max_rows:,} data rows"
        raise _over_limit(name, found, f"{config.max_rows:,} rows", "max_rows")


def _check_bytes(name: str, size: int, config: DataConfig, what: str = "holds") -> None:
    if size > config.max_decompressed_mb * _MB:
        found = f"{what} {_megabytes(size)} of data"
        raise _over_limit(name, found, f"{config.max_decompressed_mb:g} MB", "max_decompressed_mb")


def _megabytes(size: int) -> str:
    return f"{size / _MB:,.1f} MB" if size >= _MB / 10 else f"{size / 1024:,.1f} KB"


def _read_limited(path: Path, config: DataConfig) -> bytes:
    """The file's bytes, decompressed through a counter that stops reading as soon as the limit is passed."""
    name, opener = path.name, _COMPRESSED[path.suffix.lower()]
    limit = int(config.max_decompressed_mb * _MB)
    chunks, total = [], 0
    try:
        with opener(path, "rb") as stream:
            while chunk := stream.read(min(_CHUNK, limit + 1 - total)):
                chunks.append(chunk)
                total += len(chunk)
                if total > limit:
                    found = f"decompresses to more than {config.max_decompressed_mb:g} MB (stopped reading there)"
                    raise _over_limit(name, found, f"{config.max_decompressed_mb:g} MB", "max_decompressed_mb")
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as err:
        raise DataError(f"{name} could not be decompressed ({err}): check that the file is complete.") from err
    return b"".join(chunks)


def _read_bytes(path: Path, config: DataConfig) -> bytes:
    """The file's data bytes, within max_file_mb on disk and max_decompressed_mb once decompressed."""
    size = path.stat().st_size
    if size > config.max_file_mb * _MB:
        raise _over_limit(path.name, f"is {_megabytes(size)}", f"{config.max_file_mb:g} MB", "max_file_mb")
    if path.suffix.lower() in _COMPRESSED:
        return _read_limited(path, config)
    _check_bytes(path.name, size, config)
    return path.read_bytes()


# ----------------------------------------------------------------------------------------------- reading files


def _read_file(path: Path, config: DataConfig) -> tuple[pd.DataFrame, dict, LoadReport]:
    name = path.name
    raw = _read_bytes(path, config)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes.pop()
    fmt = FILE_SUFFIXES.get(suffixes[-1] if suffixes else "", "")
    if not raw.strip():
        raise DataError(f"{name} is empty: add a header row and labelled rows (e.g. text,label).")
    if raw[:4] == b"PAR1":
        fmt = "parquet"
    elif raw[:4] == b"PK\x03\x04":
        raise DataError(
            f"{name} is a zip archive (an Excel workbook?): export the sheet as CSV (UTF-8) and load that."
        )
    report = LoadReport(source=name, format=fmt)
    if fmt == "parquet":
        df, class_names = _read_parquet(raw, name, config)
        report.rows_read = len(df)
        return df, class_names, report
    text = _line_breaks(_decode(raw, name, report))
    if not fmt:
        fmt = "jsonl" if text.lstrip().startswith("{") else "json" if text.lstrip().startswith("[") else "csv"
    if fmt == "json":
        df, fmt = _read_json(text, name, config)
    elif fmt == "jsonl":
        df = _read_jsonl(text, name, config)
    else:
        df = _read_csv(text, name, fmt, report, config)
    report.format = fmt
    return df, {}, report


def _line_breaks(text: str) -> str:
    """CRLF and LF line breaks as LF. A lone CR breaks lines only in a file without LF (classic Mac): elsewhere it is
    part of a text (Python's csv writer leaves it unquoted), and splitting there made two broken rows of one."""
    text = text.replace("\r\n", "\n")
    return text if "\n" in text else text.replace("\r", "\n")


def _decode(raw: bytes, name: str, report: LoadReport) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        report.encoding = "UTF-16"
        return raw.decode("utf-16")
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw[:nul].count(b"\n") + 1
        raise DataError(
            f"{name} looks binary (a NUL byte at offset {nul}, line {line}), not text: "
            f"save it as CSV or JSONL in UTF-8, or as Parquet with a .parquet name."
        )
    try:
        text = raw.decode("utf-8-sig")
        report.encoding = "UTF-8 with BOM" if raw.startswith(codecs.BOM_UTF8) else "UTF-8"
        return text
    except UnicodeDecodeError as err:
        bad, line = raw[err.start], raw[: err.start].count(b"\n") + 1
    try:
        text, report.encoding = raw.decode("cp1252"), "Latin-1 (Windows-1252)"
    except UnicodeDecodeError:
        text, report.encoding = raw.decode("latin-1"), "Latin-1"
    report.warnings.append(
        f"{name} is not valid UTF-8 (byte 0x{bad:02x} on line {line}): read it as {report.encoding}; "
        f"check accented characters, or save the file as UTF-8."
    )
    return text


def _read_csv(text: str, name: str, fmt: str, report: LoadReport, config: DataConfig) -> pd.DataFrame:
    import pandas as pd

    header = text.lstrip("\n").split("\n", 1)[0]
    if fmt == "tsv" and "\t" in header:
        sep = "\t"
    else:  # the separator the header line uses most; a one-column file has none
        counts = {s: header.count(s) for s in _SEPARATORS}
        sep = max(counts, key=counts.get) if max(counts.values()) else ","
    report.separator = sep
    report.format = "tsv" if sep == "\t" else "csv"
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=True,
            lineterminator="\n",  # lines end at LF only (see _line_breaks)
            nrows=config.max_rows + 1,
        )  # one past the limit tells "too many" without parsing the rest
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{name} is empty: add a header row and labelled rows (e.g. text,label).") from err
    except pd.errors.ParserError as err:
        raise DataError(
            f"{name} could not be read with separator {_sep_name(sep)}: {str(err).strip()}. "
            f"Quote fields that contain the separator or line breaks with double quotes."
        ) from err
    if len(df) == 0:
        raise DataError(
            f"{name} has a header ({', '.join(map(str, df.columns))}) but no data rows: add labelled rows below it."
        )
    if not isinstance(df.index, pd.RangeIndex):  # pandas took the first field as an index: a row has one too many
        raise DataError(
            f"{name} row 1 has {len(df.columns) + 1} fields but the header has {len(df.columns)} "
            f"({', '.join(map(str, df.columns))}): a text holds the separator {sep!r} unquoted. "
            f"Quote fields that contain the separator with double quotes, or save the file as TSV."
        )
    _check_rows(name, len(df), config, exact=False)
    return df


def _read_jsonl(text: str, name: str, config: DataConfig) -> pd.DataFrame:
    import pandas as pd

    parsed = parse_jsonl(text, name)
    numbers, rows = [n for n, _ in parsed], [row for _, row in parsed]
    _check_rows(name, len(rows), config)  # the text is within max_decompressed_mb already
    if not rows:
        raise DataError(f'{name} has no JSON objects: write one {{"text": ..., "label": ...}} per line.')
    df = pd.DataFrame(rows)
    df.index = numbers  # row numbers are line numbers
    return df


def _read_json(text: str, name: str, config: DataConfig) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    try:
        obj = json.loads(text, parse_int=json_int)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # one object per line in a .json file
            return _read_jsonl(text, name, config), "jsonl"
        raise DataError(
            f"{name} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}): "
            "fix the file or save it as JSONL."
        ) from err
    if isinstance(obj, dict):
        lists = {k: v for k, v in obj.items() if isinstance(v, list)}
        records = [v for v in lists.values() if v and all(isinstance(r, dict) for r in v)]
        if len(records) == 1:
            obj = records[0]  # e.g. {"data": [{...}, ...]}
        elif lists and len(lists) == len(obj) and len({len(v) for v in lists.values()}) == 1:
            obj = pd.DataFrame(obj).to_dict("records")  # a dict of equal-length columns
    if not isinstance(obj, list) or not obj or not all(isinstance(r, dict) for r in obj):
        raise DataError(
            f"{name} must hold a JSON array of objects like [{{\"text\": ..., \"label\": ...}}, ...]; "
            f"found {type(obj).__name__}{' (empty)' if obj == [] else ''}."
        )
    _check_rows(name, len(obj), config)
    df = pd.DataFrame(obj)
    df.index = range(1, len(df) + 1)
    return df, "json"


def _read_parquet(raw: bytes, name: str, config: DataConfig) -> tuple[pd.DataFrame, dict]:
    import pyarrow.parquet as pq

    try:
        _check_parquet(raw, name, config)
        table = pq.read_table(io.BytesIO(raw))
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"{name} is not a readable Parquet file ({err}): re-export it, or save it as CSV.") from err
    if table.num_rows == 0:
        raise DataError(f"{name} has columns ({', '.join(table.column_names)}) but no rows: add labelled rows.")
    class_names = {}
    meta = (table.schema.metadata or {}).get(b"huggingface")
    if meta:  # Parquet written by `datasets` keeps ClassLabel names in its schema metadata
        features = json.loads(meta).get("info", {}).get("features", {})
        class_names = {k: v["names"] for k, v in features.items() if isinstance(v, dict) and v.get("names")}
    df = table.to_pandas()
    df.index = range(1, len(df) + 1)
    return df, class_names


def _check_parquet(raw: bytes, name: str, config: DataConfig) -> None:
    """Refuse a Parquet file from its footer before any row is decoded: row count, then uncompressed sizes.

    Dictionary-encoded text (pyarrow's default) is stored once per distinct value, so the footer can under-state
    the decoded size by orders of magnitude (a 25 KB file can hold 450 MB of text). Those columns are read still
    encoded (the dictionary plus one int32 index per value: bounded by the checks above) and measured.
    """
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(io.BytesIO(raw)).metadata
    _check_rows(name, meta.num_rows, config)
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    _check_bytes(name, sum(g.total_byte_size for g in groups), config, "holds")
    encoded = {
        g.column(j).path_in_schema
        for g in groups
        for j in range(g.num_columns)
        if g.column(j).has_dictionary_page and g.column(j).physical_type == "BYTE_ARRAY"
    }
    if not encoded:
        return
    tops = sorted({path.split(".")[0] for path in encoded})
    table = pq.ParquetFile(io.BytesIO(raw), read_dictionary=sorted(encoded)).read(columns=tops)
    plain = sum(g.total_byte_size for g in groups) - sum(
        g.column(j).total_uncompressed_size
        for g in groups
        for j in range(g.num_columns)
        if g.column(j).path_in_schema in encoded
    )
    decoded = plain + sum(_decoded_bytes(chunk) for column in table.columns for chunk in column.chunks)
    _check_bytes(name, decoded, config, f"({meta.num_rows:,} rows in {_megabytes(len(raw))}) decodes to")


def _decoded_bytes(array) -> int:
    """Bytes an Arrow array takes once its dictionary-encoded values are decoded (measured, not decoded)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.DictionaryArray):
        kind = array.dictionary.type
        if not any(
            test(kind)
            for test in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
        ):
            return array.nbytes
        lengths = pc.binary_length(array.dictionary)
        return int(pc.sum(pc.take(lengths, array.indices)).as_py() or 0) + 4 * len(array)
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type):
        return _decoded_bytes(array.flatten()) + 8 * len(array)
    if pa.types.is_struct(array.type):
        return sum(_decoded_bytes(array.field(i)) for i in range(array.type.num_fields))
    return array.nbytes


def _from_dataset(ds, source: str, config: DataConfig, fmt: str) -> tuple[pd.DataFrame, dict, LoadReport]:
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        split = config.split or ("train" if "train" in ds else next(iter(ds)) if len(ds) == 1 else None)
        if split not in ds:
            raise DataError(f"{source} has the splits {list(ds)}, not {split!r}: choose one with split (--split).")
        ds = ds[split]
    _check_rows(source, ds.num_rows, config)  # from the Arrow metadata: nothing is decoded yet
    _check_bytes(source, ds.data.nbytes, config)
    class_names = {k: list(f.names) for k, f in ds.features.items() if isinstance(f, datasets.ClassLabel)}
    df = ds.to_pandas()
    if len(df) == 0:
        raise DataError(
            f"{source} has columns ({', '.join(df.columns)}) but no rows: choose another split or add rows."
        )
    df.index = range(1, len(df) + 1)
    return df, class_names, LoadReport(source=source, format=fmt, rows_read=len(df))


def _read_saved(path: Path, config: DataConfig) -> tuple[pd.DataFrame, dict, LoadReport]:
    import datasets

    if not any((path / f).exists() for f in ("dataset_info.json", "dataset_dict.json", "state.json")):
        inside = sorted(p.name for p in path.iterdir())[:10]
        raise DataError(
            f"{path} is a folder but not a dataset saved with `save_to_disk` (it holds {inside}): "
            "give a file or such a folder."
        )
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as err:
        raise DataError(f"{path} could not be loaded with datasets.load_from_disk: {err}") from err
    return _from_dataset(ds, path.name, config, "datasets")


def _read_hub(source: str, config: DataConfig) -> tuple[pd.DataFrame, dict, LoadReport]:
    import datasets

    from cod.public import hub_token_for_load

    split = config.split or "train"
    token = hub_token_for_load()  # public mode: never the owner's HF_TOKEN (their private datasets)
    hub = {} if token is None else {"token": token}
    try:
        _check_hub_split(datasets.load_dataset_builder(source, name=config.subset, **hub), source, split, config)
        ds = datasets.load_dataset(source, name=config.subset, split=split, **hub)
    except DataError:
        raise
    except Exception as err:
        raise DataError(
            f"Could not load the Hub dataset {source!r} (subset {config.subset!r}, split {split!r}): {err}. "
            f"Check the id, subset and split; Hub datasets need a network connection (or give a local file)."
        ) from err
    return _from_dataset(ds, source, config, "hub")


def _check_hub_split(builder, source: str, split: str, config: DataConfig) -> None:
    """Refuse a Hub split from the sizes its card declares, before anything is downloaded (when it declares them;
    otherwise the downloaded split is checked before it is converted)."""
    info = (builder.info.splits or {}).get(split)
    if info is not None:
        _check_rows(source, info.num_examples or 0, config)
        _check_bytes(source, info.num_bytes or 0, config)


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
            f"({_rows(report.truncated_rows)}): raise max_chars (--max-chars) to keep them whole."
        )
    if report.conflicting_rows:
        report.warnings.append(
            f"{len(report.conflicting_rows)} repeated text(s) carry a different label than their first occurrence "
            f"({_rows(report.conflicting_rows)}): fix or remove them."
        )
    final = Counter(e.label for e in examples)
    report.label_counts = {n: final.get(i, 0) for i, n in enumerate(names)}
    return LabelledData(examples, names, report, text_col, label_col, pair_col, row_numbers)


def _rows(rows: list[int], shown: int = 10) -> str:
    """'row 3' or 'rows 3, 5, ... and 12 more'."""
    head = ("row " if len(rows) == 1 else "rows ") + ", ".join(str(r) for r in rows[:shown])
    return head + (f" and {len(rows) - shown:,} more" if len(rows) > shown else "")


def _sep_name(sep: str) -> str:
    return {
        "": "",
        ",": "comma-separated",
        "\t": "tab-separated",
        ";": "semicolon-separated",
        "|": "pipe-separated",
    }.get(sep, repr(sep))
