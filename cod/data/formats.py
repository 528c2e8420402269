"""Reading labelled-data files: formats (CSV / TSV / JSONL / JSON / Parquet, compressed or not, `save_to_disk` folders,
Hub datasets), encodings, and the size and row limits checked before anything large is decoded.

`cod.data.readers` turns what these return (a DataFrame, class names, a `LoadReport`) into validated examples.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import json
import lzma
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cod.config import DataConfig
from cod.errors import DataError
from cod.io import json_int, parse_jsonl

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


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
                f"{reason} {n:,} ({row_list(self.dropped_rows.get(reason, []))})" for reason, n in self.dropped.items()
            ]
            out.append(f"Dropped {sum(self.dropped.values()):,} rows: " + "; ".join(parts) + ".")
        else:
            out.append("Dropped no rows.")
        if self.duplicates:
            fate = "dropped" if "duplicate" in self.dropped else "kept"
            out.append(f"Duplicates: {self.duplicates:,} repeated texts ({row_list(self.duplicate_rows)}), {fate}.")
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


def check_rows(name: str, rows: int, config: DataConfig, exact: bool = True) -> None:
    """Refuse more than `config.max_rows` data rows, naming the setting that raises the limit."""
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


def read_file(path: Path, config: DataConfig) -> tuple[pd.DataFrame, dict, LoadReport]:
    """A data file (format from its suffix or its first bytes) as a DataFrame, class names and a LoadReport."""
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
    check_rows(name, len(df), config, exact=False)
    return df


def _read_jsonl(text: str, name: str, config: DataConfig) -> pd.DataFrame:
    import pandas as pd

    parsed = parse_jsonl(text, name)
    numbers, rows = [n for n, _ in parsed], [row for _, row in parsed]
    check_rows(name, len(rows), config)  # the text is within max_decompressed_mb already
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
    check_rows(name, len(obj), config)
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
    check_rows(name, meta.num_rows, config)
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
    check_rows(source, ds.num_rows, config)  # from the Arrow metadata: nothing is decoded yet
    _check_bytes(source, ds.data.nbytes, config)
    class_names = {k: list(f.names) for k, f in ds.features.items() if isinstance(f, datasets.ClassLabel)}
    df = ds.to_pandas()
    if len(df) == 0:
        raise DataError(
            f"{source} has columns ({', '.join(df.columns)}) but no rows: choose another split or add rows."
        )
    df.index = range(1, len(df) + 1)
    return df, class_names, LoadReport(source=source, format=fmt, rows_read=len(df))


def read_saved(path: Path, config: DataConfig) -> tuple[pd.DataFrame, dict, LoadReport]:
    """A dataset folder written by `save_to_disk`, within the row and size limits."""
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


def read_hub(source: str, config: DataConfig) -> tuple[pd.DataFrame, dict, LoadReport]:
    """A Hub dataset split, refused from its declared sizes before download where the card declares them."""
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
        check_rows(source, info.num_examples or 0, config)
        _check_bytes(source, info.num_bytes or 0, config)


def _sep_name(sep: str) -> str:
    return {
        "": "",
        ",": "comma-separated",
        "\t": "tab-separated",
        ";": "semicolon-separated",
        "|": "pipe-separated",
    }.get(sep, repr(sep))


def row_list(rows: list[int], shown: int = 10) -> str:
    """'row 3' or 'rows 3, 5, ... and 12 more'."""
    head = ("row " if len(rows) == 1 else "rows ") + ", ".join(str(r) for r in rows[:shown])
    return head + (f" and {len(rows) - shown:,} more" if len(rows) > shown else "")
