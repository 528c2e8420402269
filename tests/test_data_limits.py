"""Reader limits: rows and decompressed bytes for every format, refused before the data is decoded."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cod.config import DataConfig
from cod.data import formats
from cod.data.readers import load
from cod.errors import ConfigError, DataError

ROWS = ["great fun,positive", "awful mess,negative"]


def csv_rows(n: int) -> str:
    return "text,label\n" + "".join(f"{'great' if i % 2 else 'awful'} film number {i},{i % 2}\n" for i in range(n))


def parquet_bomb(path, rows: int = 100_000, width: int = 4_500) -> None:
    """About rows * width bytes of text in a file of a few KB: three distinct texts, dictionary-encoded."""
    texts = pa.array([chr(ord("a") + i) * width for i in range(3)])
    column = pa.DictionaryArray.from_arrays(pa.array([i % 3 for i in range(rows)], pa.int32()), texts)
    labels = pa.array([i % 2 for i in range(rows)])
    pq.write_table(pa.table({"text": column, "label": labels}), path, compression="zstd")


@pytest.fixture
def no_full_read(monkeypatch):
    """Fail the test if the whole Parquet table is ever read."""
    calls = []
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: calls.append(a) or pytest.fail("the table was read"))
    return calls


def test_parquet_bomb_is_refused_before_it_is_read(tmp_path, no_full_read):
    path = tmp_path / "bomb.parquet"
    parquet_bomb(path)
    assert path.stat().st_size < 25_000  # a 25 KB file ...
    with pytest.raises(DataError) as err:
        load(path)  # ... holding 450 MB of text is refused under the default 200 MB
    message = str(err.value)
    assert message.startswith("bomb.parquet (100,000 rows in ")
    assert "decodes to 429.5 MB of data, above the limit of 200 MB" in message
    assert "raise max_decompressed_mb (--max-decompressed-mb, or COD_MAX_DECOMPRESSED_MB for the app)" in message
    assert not no_full_read


def test_plain_encoded_parquet_is_refused_from_its_footer(tmp_path, no_full_read):
    path = tmp_path / "plain.parquet"
    table = pa.table({"text": ["x" * 1000 + str(i) for i in range(2000)], "label": [i % 2 for i in range(2000)]})
    pq.write_table(table, path, use_dictionary=False, compression="zstd")
    with pytest.raises(DataError, match=r"plain.parquet holds 1.9 MB of data, above the limit of 1 MB"):
        load(path, DataConfig(max_decompressed_mb=1))


def test_parquet_rows_are_refused_from_its_footer(tmp_path, no_full_read):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": [f"text {i}" for i in range(11)], "label": [i % 2 for i in range(11)]}), path)
    with pytest.raises(
        DataError,
        match=r"rows.parquet has 11 data rows, above the limit of 10 rows: raise max_rows "
        r"\(--max-rows, or COD_MAX_ROWS for the app\)",
    ):
        load(path, DataConfig(max_rows=10))


def test_parquet_within_the_limits_loads(tmp_path):
    path = tmp_path / "small.parquet"
    parquet_bomb(path, rows=40, width=50)
    data = load(path, DataConfig(max_rows=40, max_decompressed_mb=1))
    assert len(data) == 40 and data.report.duplicates == 37


@pytest.mark.parametrize(
    "name, body",
    [
        ("a.csv", csv_rows(11)),
        ("a.tsv", csv_rows(11).replace(",", "\t")),
        ("a.jsonl", "".join(json.dumps({"text": f"film {i}", "label": i % 2}) + "\n" for i in range(11))),
        ("a.json", json.dumps([{"text": f"film {i}", "label": i % 2} for i in range(11)])),
    ],
)
def test_text_formats_refuse_too_many_rows(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DataError, match=rf"{name} has (more than 10|11) data rows, above the limit of 10 rows"):
        load(path, DataConfig(max_rows=10))
    assert len(load(path, DataConfig(max_rows=11))) == 11


def test_csv_parsing_stops_past_the_row_limit(tmp_path, monkeypatch):
    import pandas as pd

    seen = {}
    real = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: seen.update(k) or real(*a, **k))
    path = tmp_path / "a.csv"
    path.write_text(csv_rows(1000), encoding="utf-8")
    with pytest.raises(DataError, match="more than 10 data rows"):
        load(path, DataConfig(max_rows=10))
    assert seen["nrows"] == 11


COMPRESSORS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
def test_compressed_files_stop_at_the_byte_limit(tmp_path, monkeypatch, suffix):
    """4 MB of CSV in a few KB: the counting reader stops after 1 MB (plus one chunk at most)."""
    path = tmp_path / f"bomb.csv{suffix}"
    path.write_bytes(COMPRESSORS[suffix](csv_rows(2).encode() + b"filler text,1\n" * 300_000))
    assert path.stat().st_size < 1_000_000
    returned = []
    opener = formats._COMPRESSED[suffix]

    class Counting:
        def __init__(self, *args):
            self.stream = opener(*args)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

        def read(self, n):
            chunk = self.stream.read(n)
            returned.append(len(chunk))
            return chunk

    monkeypatch.setitem(formats._COMPRESSED, suffix, Counting)
    with pytest.raises(DataError) as err:
        load(path, DataConfig(max_decompressed_mb=1))
    assert str(err.value).startswith(
        f"bomb.csv{suffix} decompresses to more than 1 MB (stopped reading there), "
        f"above the limit of 1 MB: raise max_decompressed_mb"
    )
    assert sum(returned) == 2**20 + 1  # read one byte past the limit, then stopped


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
def test_compressed_files_within_the_limit_load(tmp_path, suffix):
    path = tmp_path / f"a.csv{suffix}"
    path.write_bytes(COMPRESSORS[suffix](csv_rows(12).encode()))
    assert len(load(path, DataConfig(max_decompressed_mb=1))) == 12


def test_truncated_compressed_file_is_a_data_error(tmp_path):
    path = tmp_path / "cut.csv.xz"
    path.write_bytes(lzma.compress(csv_rows(500).encode())[:200])
    with pytest.raises(DataError, match=r"cut.csv.xz could not be decompressed .*check that the file is complete"):
        load(path)


def test_plain_file_over_the_decompressed_limit(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text(csv_rows(60_000), encoding="utf-8")
    with pytest.raises(DataError, match=r"big.csv holds 1.5 MB of data, above the limit of 1 MB"):
        load(path, DataConfig(max_decompressed_mb=1))


def test_datasets_folder_is_checked_before_it_is_converted(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"text": [f"film {i}" for i in range(11)], "label": [i % 2 for i in range(11)]})
    ds.save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(DataError, match=r"saved has 11 data rows, above the limit of 10 rows: raise max_rows"):
        load(tmp_path / "saved", DataConfig(max_rows=10))
    with pytest.raises(DataError, match=r"saved holds .* KB of data, above the limit of 1e-05 MB"):
        load(tmp_path / "saved", DataConfig(max_decompressed_mb=0.00001))
    assert len(load(tmp_path / "saved", DataConfig(max_rows=11))) == 11


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("COD_MAX_ROWS", "500")
    monkeypatch.setenv("COD_MAX_DECOMPRESSED_MB", "2.5")
    monkeypatch.setenv("COD_MAX_FILE_MB", "3")
    config = DataConfig()
    assert (config.max_rows, config.max_decompressed_mb, config.max_file_mb) == (500, 2.5, 3.0)
    assert DataConfig(max_rows=7).max_rows == 7  # an explicit setting wins
    monkeypatch.setenv("COD_MAX_ROWS", "lots")
    with pytest.raises(ConfigError, match=r"COD_MAX_ROWS='lots' is not a number"):
        DataConfig()


def test_limits_are_documented_in_the_config():
    import dataclasses

    helps = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(DataConfig)}
    for name, env in [
        ("max_rows", "COD_MAX_ROWS"),
        ("max_decompressed_mb", "COD_MAX_DECOMPRESSED_MB"),
        ("max_file_mb", "COD_MAX_FILE_MB"),
    ]:
        assert env in helps[name]
    defaults = DataConfig()
    assert (defaults.max_rows, defaults.max_decompressed_mb, defaults.max_file_mb) == (100_000, 200.0, 200.0)


def test_cli_flags_and_environment_set_the_limits(tmp_path, monkeypatch, capsys):
    from cod.cli import main

    path = tmp_path / "a.csv"
    path.write_text(csv_rows(12), encoding="utf-8")
    assert main(["data", "inspect", str(path), "--max-rows", "10"]) == 2
    assert "a.csv has more than 10 data rows, above the limit of 10 rows: raise max_rows" in capsys.readouterr().err
    monkeypatch.setenv("COD_MAX_ROWS", "11")
    assert main(["data", "inspect", str(path)]) == 2  # no flag: the environment's limit
    assert "above the limit of 11 rows" in capsys.readouterr().err
    assert main(["data", "inspect", str(path), "--max-rows", "12"]) == 0


def test_hub_split_is_refused_from_its_card_before_download(monkeypatch):
    """The builder's declared split sizes are checked first; load_dataset (the download) is never reached."""
    import datasets

    splits = datasets.SplitDict()
    splits.add(datasets.SplitInfo("train", num_bytes=650_000_000, num_examples=650_000))
    card = SimpleNamespace(info=datasets.DatasetInfo(splits=splits))
    calls = []
    monkeypatch.setattr(datasets, "load_dataset_builder", lambda *a, **k: calls.append(a) or card)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(DataError, match=r"someone/yelp has 650,000 data rows, above the limit of 100,000 rows"):
        load("someone/yelp")
    with pytest.raises(DataError, match=r"someone/yelp holds 619.9 MB of data, above the limit of 200 MB"):
        load("someone/yelp", DataConfig(max_rows=1_000_000))
    assert calls == [("someone/yelp",), ("someone/yelp",)]
