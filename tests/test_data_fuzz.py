"""Fuzzing the loader with hypothesis: generated CSV, TSV, JSONL and JSON files either load with a report that accounts
for every row, or raise `DataError`; never another exception, never a lost or invented row.

The suite runs the `ci` profile (fixed examples, a few seconds); `--hypothesis-profile=long` explores thousands more.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cod.config import DataConfig
from cod.data.readers import load
from cod.errors import DataError

MAX_CHARS = 300
CONFIG = DataConfig(max_chars=MAX_CHARS)
HEADERS = [("text", "label"), ("sentence", "sentiment"), ("Review", "Stars"), ("text", "label", "extra")]

# Texts: printable words, separators, quotes, whitespace, line breaks, control characters, NULs, long fields.
pieces = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20),
    st.sampled_from(
        [
            ",",
            ";",
            "\t",
            "|",
            '"',
            "'",
            '""',
            "\n",
            "\r\n",
            "\r",
            " ",
            "\x00",
            "\x0b",
            "\x1b",
            "\ufeff",
            "=1+2",
            "-3",
            "@sum",
            "NaN",
            "null",
            "é",
            "日本",
            "🙂",
            "\\",
            "{",
            "[",
        ]
    ),
    st.builds(lambda c, n: c * n, st.sampled_from("ax é"), st.integers(1, 5_000)),  # huge fields
)
texts = st.lists(pieces, max_size=6).map("".join)
string_labels = st.sampled_from(
    [
        "pos",
        "neg",
        "POS",
        " neg ",
        "positive",
        "negative",
        "1",
        "0",
        "1.0",
        "-1",
        "2",
        "",
        " ",
        "nan",
        "None",
        "N/A",
        "null",
        "yes",
        "no",
        "très bien",
        "a,b",
        'q"t',
        "x" * 300,
        "\t",
        "0x1",
        "+1",
        "1e3",
        "inf",
        "007",
        "7",
        "²",
        "١",
        "1" * 400,
        "1" * 5000,
        "1" + "0" * 30,
        "1" + "0" * 29 + "1",
    ]
)
any_labels = st.one_of(
    string_labels,
    st.integers(-3, 3),
    st.integers(),
    st.sampled_from([0.0, 1.0, 1.5, math.nan, True, None, 2**60, 2**60 + 1]),
)


def table(cells, labels, max_size: int = 30):
    """Rows of (cell, label) whose labels come mostly from a small per-file pool, so that many files are loadable."""
    pools = st.lists(labels, min_size=2, max_size=4, unique_by=repr)
    return pools.flatmap(
        lambda pool: st.lists(
            st.tuples(cells, st.one_of(st.sampled_from(pool), labels) if len(pool) > 3 else st.sampled_from(pool)),
            min_size=1,
            max_size=max_size,
        )
    )


def _row_text(value) -> str | None:
    """The text the loader should keep for a generated cell, before truncation (None: dropped or refused)."""
    return value.strip() if isinstance(value, str) else None


def check_accounting(data, rows: list, numbers: list[int]) -> None:
    """Every generated row is either an example or a dropped row with a reason; examples carry their row's text."""
    report = data.report
    assert report.rows_read == len(rows)
    assert len(data.examples) + sum(report.dropped.values()) == len(rows)
    assert len(data.row_numbers) == len(data.examples)
    dropped = [r for reason_rows in report.dropped_rows.values() for r in reason_rows]
    assert sorted(data.row_numbers + dropped) == sorted(numbers), "a row is lost, invented or counted twice"
    by_number = dict(zip(numbers, rows))
    for row, example in zip(data.row_numbers, data.examples):
        source = by_number[row][0]
        assert isinstance(example.text, str) and example.text
        expected = _row_text(source)
        if expected is not None:
            assert example.text == expected[:MAX_CHARS], f"row {row} text changed"
    label_of = {}
    for row, example in zip(data.row_numbers, data.examples):  # one class per distinct generated label
        label_of.setdefault(_label_identity(by_number[row][1]), set()).add(example.label)
    assert all(len(classes) == 1 for classes in label_of.values()), f"one label, several classes: {label_of}"
    owners = Counter(c for classes in label_of.values() for c in classes)
    assert all(n == 1 for n in owners.values()), f"distinct labels merged into one class: {label_of}"


def _label_identity(value) -> str:
    """Loose identity of a label value: the same class must come out for values equal under it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else repr(value)
    text = " ".join(str(value).split()).casefold()
    if re.fullmatch(r"[+-]?\d+(\.0*)?", text):
        try:
            return str(int(text.partition(".")[0]))  # integers compare exactly, at any length
        except ValueError:  # beyond int()'s 4,300 digits
            return text
    return text


def load_or_data_error(path, rows, numbers):
    try:
        data = load(path, CONFIG)
    except DataError as err:
        assert str(err).strip()
        event(f"DataError: {str(err).split(':')[0][:60]}")
        return None
    event("loaded")
    check_accounting(data, rows, numbers)
    return data


def fuzz(test):
    return settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])(test)


@fuzz
@given(
    rows=table(texts, string_labels),
    fmt=st.sampled_from(["csv", "tsv"]),
    delimiter=st.sampled_from([",", ";", "|"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    newline=st.sampled_from(["\n", "\r\n"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
    header=st.sampled_from(HEADERS),
)
def test_fuzz_csv_and_tsv(tmp_path_factory, rows, fmt, delimiter, quoting, newline, encoding, header):
    sep = "\t" if fmt == "tsv" else delimiter
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, quoting=quoting, lineterminator=newline)
    writer.writerow(header)
    writer.writerows([(text, label, "x")[: len(header)] for text, label in rows])
    try:
        raw = out.getvalue().encode(encoding)
    except UnicodeEncodeError:  # text outside Windows-1252: write it as UTF-8 instead
        encoding, raw = "utf-8", out.getvalue().encode("utf-8")
    path = tmp_path_factory.mktemp("fuzz") / f"data.{fmt}"
    path.write_bytes(raw)
    data = load_or_data_error(path, [(_csv_text(t, encoding), y) for t, y in rows], list(range(1, len(rows) + 1)))
    if data is not None:
        assert data.report.separator == sep


def _csv_text(text: str, encoding: str) -> str | None:
    """What a CSV cell can round-trip: CRLF becomes LF; a cp1252 file may be re-read as another encoding."""
    if encoding == "cp1252" and not text.isascii():
        return None
    return text.replace("\r\n", "\n")


plain_texts = st.text(st.characters(codec="ascii", categories=("L", "N", "Zs", "P")), max_size=40)


@fuzz
@given(
    rows=table(plain_texts, st.sampled_from(["pos", "neg", "1", "0", "neutral"])),
    delimiter=st.sampled_from(",;|\t"),
    every_text_split=st.booleans(),
)
def test_fuzz_unquoted_csv(tmp_path_factory, rows, delimiter, every_text_split):
    """Written by hand, without quoting: a text holding the separator must be refused, never silently split."""
    rows = [(text.replace('"', "") + (f"{delimiter}more" if every_text_split else ""), label) for text, label in rows]
    path = tmp_path_factory.mktemp("fuzz") / ("data.tsv" if delimiter == "\t" else "data.csv")
    path.write_text(f"text{delimiter}label\n" + "".join(f"{t}{delimiter}{y}\n" for t, y in rows), encoding="utf-8")
    data = load_or_data_error(path, rows, list(range(1, len(rows) + 1)))
    if data is not None:
        assert not any(delimiter in text for text, _ in rows), "a text with an unquoted separator was split"


@fuzz
@given(
    rows=table(st.one_of(texts, st.integers(), st.none()), any_labels),
    blank_lines=st.lists(st.integers(0, 30), max_size=3),
    ascii_only=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
    suffix=st.sampled_from([".jsonl", ".ndjson", ".json"]),
)
def test_fuzz_jsonl(tmp_path_factory, rows, blank_lines, ascii_only, encoding, suffix):
    lines, numbers = [], []
    for text, label in rows:
        if len(lines) in blank_lines:
            lines.append("")
        lines.append(json.dumps({"text": text, "label": label}, ensure_ascii=ascii_only))
        numbers.append(len(lines))
    path = tmp_path_factory.mktemp("fuzz") / f"data{suffix}"
    path.write_bytes("\n".join(lines).encode(encoding))
    load_or_data_error(path, rows, numbers)


@fuzz
@given(
    rows=table(st.one_of(texts, st.integers(), st.none()), any_labels),
    shape=st.sampled_from(["records", "wrapped", "columns"]),
    ascii_only=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-16"]),
)
def test_fuzz_json(tmp_path_factory, rows, shape, ascii_only, encoding):
    records = [{"text": text, "label": label} for text, label in rows]
    body = {
        "records": records,
        "wrapped": {"data": records},
        "columns": {"text": [t for t, _ in rows], "label": [y for _, y in rows]},
    }[shape]
    path = tmp_path_factory.mktemp("fuzz") / "data.json"
    path.write_bytes(json.dumps(body, ensure_ascii=ascii_only).encode(encoding))
    load_or_data_error(path, rows, list(range(1, len(rows) + 1)))


@fuzz
@given(
    body=st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode)),
    suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".txt", ".parquet", ".csv.gz"]),
)
def test_fuzz_arbitrary_bytes_load_or_raise_data_error(tmp_path_factory, body, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"data{suffix}"
    path.write_bytes(b"text,label\n" + body if suffix in (".csv", ".txt") else body)
    try:
        data = load(path, CONFIG)
    except DataError:
        return
    assert len(data.examples) + sum(data.report.dropped.values()) == data.report.rows_read


# ------------------------------------------------------------------------------------ regressions the fuzzer found


def test_json_true_and_1_are_distinct_labels_in_any_order(tmp_path):
    """True == 1 in Python: the label cache keyed by value gave 1 the class of an earlier `true`."""
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"text": "a", "label": 1.0}, {"text": "b", "label": True}, {"text": "c", "label": 1}]))
    data = load(path)
    assert data.label_names == ["1", "true"]
    assert [data.label_names[e.label] for e in data.examples] == ["1", "true", "1"]


def test_a_row_with_an_unquoted_separator_is_refused_not_shifted(tmp_path):
    """pandas took the first field of such a row as the index and shifted the rest: 'great film,fun,1' became the
    text 'fun'. The loader now says which row and what to do."""
    path = tmp_path / "a.csv"
    path.write_text("text,label\ngreat film,fun,1\nawful film,bad,0\nnice one,ok,1\n", encoding="utf-8")
    with pytest.raises(
        DataError,
        match=r"a.csv row 1 has 3 fields but the header has 2 \(text, label\): a text "
        r"holds the separator ',' unquoted. Quote fields",
    ):
        load(path)


def test_numeric_labels_beyond_float_and_int_limits(tmp_path):
    """Labels went through float(): '1' * 400 overflowed (OverflowError), 31-digit labels merged, '²' reached
    int() (ValueError), and a JSON integer of 5,000 digits stopped json.loads (ValueError)."""
    huge, near = "1" * 400, ["1" + "0" * 29 + "1", "1" + "0" * 30]
    csv_path = tmp_path / "a.csv"
    body = f"text,label\na,{huge}\nb,0\nc,{near[0]}\nd,{near[1]}\ne,²\nf,{'7' * 5000}\n"
    csv_path.write_text(body, encoding="utf-8")
    data = load(csv_path)
    assert sorted(data.label_names, key=len) == ["0", "²", near[1], near[0], huge, "7" * 5000]
    assert len({e.label for e in data.examples}) == 6
    json_path = tmp_path / "a.jsonl"
    json_path.write_text(f'{{"text": "a", "label": {"1" * 5000}}}\n{{"text": "b", "label": 0}}\n', encoding="utf-8")
    assert load(json_path).label_names == ["0", "1" * 5000]


def test_a_table_with_repeated_column_names_is_a_data_error():
    """df['text'] of a frame with two 'text' columns is a frame, not a column: it raised AttributeError."""
    import pandas as pd

    from cod.data.readers import from_frame

    frame = pd.DataFrame([["a", "x", 0], ["b", "y", 1]], columns=["text", "text", "label"])
    with pytest.raises(DataError, match=r"a table has more than one column named \['text'\]: rename them"):
        from_frame(frame)


def test_a_lone_carriage_return_in_an_unquoted_text_stays_in_its_row(tmp_path):
    """Python's csv writer leaves a text ending in CR unquoted ('0\\r,pos'); reading every CR as a line break made
    two broken rows of it (one without a label, one without a text). Found by the long fuzz profile."""
    path = tmp_path / "a.csv"
    path.write_bytes(b"text,label\na film,pos\nthe film,neg\nfun film\r,pos\nmac\rline,neg\n")
    data = load(path)
    assert data.report.rows_read == 4 and not data.report.dropped
    assert [e.text for e in data.examples] == ["a film", "the film", "fun film", "mac\rline"]
    classic_mac = tmp_path / "mac.csv"  # a file with CR line breaks only still reads line by line
    classic_mac.write_bytes(b"text,label\ra film,pos\rthe film,neg\r")
    assert [e.text for e in load(classic_mac).examples] == ["a film", "the film"]
