"""cod.data.readers: awkward files of every kind, each validation error's message, few-shot sampling."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from cod.config import DataConfig
from cod.data.readers import Example, from_frame, load
from cod.data.splits import cod_real_half, sample_few_shot
from cod.errors import DataError

POS = ["great fun", "a lovely film", "brilliant acting", "so moving", "the best story", "charming plot"]
NEG = ["awful mess", "so boring", "a dull film", "terrible acting", "the worst plot", "tedious story"]


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def _bytes(tmp_path, name, raw: bytes):
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def balanced_rows(n=6):
    return [(t, "positive") for t in POS[:n]] + [(t, "negative") for t in NEG[:n]]


def texts(data):
    return [e.text for e in data.examples]


# ------------------------------------------------------------------------------------------------- formats


def test_csv_with_string_labels_in_any_case(tmp_path):
    path = write(tmp_path, "a.csv", "text,label\ngreat fun,POSITIVE\nawful mess,negative\nso moving, Positive \n")
    data = load(path)
    assert data.label_names == ["negative", "positive"]  # natural order, not file order
    assert [e.label for e in data.examples] == [1, 0, 1]
    assert data.report.format == "csv" and data.report.rows_read == 3 and data.report.kept == 3


@pytest.mark.parametrize(
    "name, sep",
    [("a.tsv", "\t"), ("a.txt", "\t"), ("a.csv", ";"), ("b.csv", "|")],
)
def test_separator_is_sniffed_from_the_header(tmp_path, name, sep):
    body = f"sentence{sep}label\n" + "".join(f"{t}, really{sep}{y}\n" for t, y in [("good", 1), ("bad", 0)])
    data = load(write(tmp_path, name, body))
    assert texts(data) == ["good, really", "bad, really"]  # a comma inside the text does not split it
    assert data.report.separator == sep


def test_crlf_quoted_newlines_and_quoted_separators(tmp_path):
    body = 'text,label\r\n"great,\r\nreally great",1\r\n"say ""no""",0\r\n'
    data = load(_bytes(tmp_path, "a.csv", body.encode()))
    assert texts(data) == ["great,\nreally great", 'say "no"']


def test_jsonl_with_blank_lines_reports_line_numbers(tmp_path):
    lines = ['{"text": "great fun", "label": 1}', "", '{"text": "", "label": 0}', '{"text": "awful", "label": 0}']
    data = load(write(tmp_path, "a.jsonl", "\n".join(lines) + "\n"))
    assert texts(data) == ["great fun", "awful"]
    assert data.report.dropped == {"empty text": 1}
    assert data.report.dropped_rows == {"empty text": [3]}  # the line number
    assert data.row_numbers == [1, 4]


@pytest.mark.parametrize(
    "content",
    [
        [{"text": "great fun", "label": "pos"}, {"text": "awful", "label": "neg"}],
        {"text": ["great fun", "awful"], "label": ["pos", "neg"]},
        {"data": [{"text": "great fun", "label": "pos"}, {"text": "awful", "label": "neg"}]},
    ],
    ids=["array", "columns", "wrapped"],
)
def test_json_shapes(tmp_path, content):
    data = load(write(tmp_path, "a.json", json.dumps(content)))
    assert texts(data) == ["great fun", "awful"] and data.label_names == ["neg", "pos"]


def test_json_lines_in_a_json_file(tmp_path):
    data = load(write(tmp_path, "a.json", '{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n'))
    assert data.report.format == "jsonl" and len(data) == 2


def test_parquet_with_int_labels(tmp_path):
    path = tmp_path / "a.parquet"
    pd.DataFrame({"review": ["good", "bad", "fine"], "label": [1, 0, 1]}).to_parquet(path)
    data = load(path)
    assert data.label_names == ["0", "1"] and [e.label for e in data.examples] == [1, 0, 1]
    assert data.report.format == "parquet"


def test_parquet_written_by_datasets_keeps_classlabel_names(tmp_path):
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    ds = datasets.Dataset.from_dict({"text": ["good", "bad"], "label": [1, 0]}, features=features)
    ds.to_parquet(str(tmp_path / "a.parquet"))
    data = load(tmp_path / "a.parquet")
    assert data.label_names == ["neg", "pos"] and [e.label for e in data.examples] == [1, 0]


def test_save_to_disk_folder_with_splits_and_unlabelled_rows(tmp_path):
    import datasets

    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["bad", "good"])}
    )
    train = datasets.Dataset.from_dict({"sentence": ["fine", "awful", "great"], "label": [1, 0, 1]}, features=features)
    test = datasets.Dataset.from_dict({"sentence": ["x", "y", "z"], "label": [-1, 0, 1]}, features=features)
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "saved"))
    data = load(tmp_path / "saved")
    assert data.label_names == ["bad", "good"] and texts(data) == ["fine", "awful", "great"]
    data = load(tmp_path / "saved", DataConfig(split="test"))
    assert data.report.dropped == {"no label (-1)": 1} and texts(data) == ["y", "z"]
    with pytest.raises(DataError, match=r"splits \['train', 'test'\], not 'validation'"):
        load(tmp_path / "saved", DataConfig(split="validation"))


def test_a_folder_that_is_not_a_saved_dataset(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"not a dataset saved with `save_to_disk`.*notes.txt"):
        load(tmp_path / "folder")


def test_hub_id_offline_is_a_clear_error():
    with pytest.raises(DataError, match=r"Hub dataset 'someone/reviews'.*network connection"):
        load("someone/reviews")


def test_missing_file_is_named():
    with pytest.raises(DataError, match=r"File 'missing.csv' not found"):
        load("missing.csv")


def test_gzip_compressed_csv(tmp_path):
    path = _bytes(tmp_path, "a.csv.gz", gzip.compress(b"text,label\ngood,1\nbad,0\n"))
    assert texts(load(path)) == ["good", "bad"]


# ----------------------------------------------------------------------------------------------- encodings


def test_utf8_bom_does_not_stick_to_the_first_column(tmp_path):
    data = load(_bytes(tmp_path, "a.csv", "\ufefftext,label\ncafé good,1\nbad,0\n".encode()))
    assert data.text_column == "text" and data.report.encoding == "UTF-8 with BOM"
    assert texts(data)[0] == "café good" and not data.report.warnings


def test_latin1_fallback_warns_with_the_line(tmp_path):
    data = load(_bytes(tmp_path, "a.csv", "text,label\ngood,1\ncafé bad,0\n".encode("latin-1")))
    assert texts(data) == ["good", "café bad"]
    assert any("not valid UTF-8" in w and "line 3" in w and "Latin-1" in w for w in data.report.warnings)


def test_windows_1252_quotes(tmp_path):
    data = load(_bytes(tmp_path, "a.csv", "text,label\nit\u2019s good,1\nbad,0\n".encode("cp1252")))
    assert texts(data)[0] == "it\u2019s good"


def test_utf16_with_bom(tmp_path):
    data = load(_bytes(tmp_path, "a.tsv", "text\tlabel\ngood\t1\nbad\t0\n".encode("utf-16")))
    assert texts(data) == ["good", "bad"] and data.report.encoding == "UTF-16"


# ------------------------------------------------------------------------------------------------- columns


@pytest.mark.parametrize(
    "header, text_col, label_col",
    [
        ("Review,Sentiment", "Review", "Sentiment"),
        ("content,polarity", "content", "polarity"),
        ("id,tweet,target", "tweet", "target"),
        ("Review Text,Class", "Review Text", "Class"),
    ],
)
def test_common_column_names_are_guessed(tmp_path, header, text_col, label_col):
    n = header.count(",")
    rows = "".join(("7," if n == 2 else "") + f"{t},{y}\n" for t, y in [("good", 1), ("bad", 0)])
    data = load(write(tmp_path, "a.csv", header + "\n" + rows))
    assert (data.text_column, data.label_column) == (text_col, label_col)
    assert texts(data) == ["good", "bad"]


def test_pair_columns_are_guessed(tmp_path):
    data = load(write(tmp_path, "a.csv", "sentence1,sentence2,label\nA man runs,A person moves,1\nA cat,A dog,0\n"))
    assert data.text_pair_column == "sentence2" and data.examples[0] == Example("A man runs", 1, "A person moves")


def test_text_guessed_from_content_but_the_label_column_never(tmp_path):
    rows = "".join(f"{i},{t} and more words,{y}\n" for i, (t, y) in enumerate(balanced_rows(3)))
    path = write(tmp_path, "a.csv", "id,words,verdict\n" + rows)
    with pytest.raises(DataError, match=r"no label column among \['id', 'words', 'verdict'\].*--label-column"):
        load(path)
    data = load(path, DataConfig(label_column="verdict"))
    assert (data.text_column, data.label_column) == ("words", "verdict")
    assert any("guessed from content: text" in n for n in data.report.notes)


def test_columns_can_be_overridden(tmp_path):
    path = write(tmp_path, "a.csv", "text,title,label,mood\nlong text,good,x,1\nother,bad,y,0\n")
    data = load(path, DataConfig(text_column="title", label_column="mood"))
    assert texts(data) == ["good", "bad"] and data.label_names == ["0", "1"]


def test_missing_column_lists_the_columns(tmp_path):
    path = write(tmp_path, "a.csv", "text,label\ngood,1\nbad,0\n")
    with pytest.raises(DataError, match=r"a.csv has no label column 'stars'; its columns are \['text', 'label'\]"):
        load(path, DataConfig(label_column="stars"))


def test_no_label_column_at_all(tmp_path):
    path = write(tmp_path, "a.csv", "text\ngood film indeed\nbad film indeed\n")
    with pytest.raises(DataError, match=r"no label column among \['text'\].*--label-column"):
        load(path)


# -------------------------------------------------------------------------------------------------- labels


def test_minus_one_and_one_are_mapped_with_a_note(tmp_path):
    data = load(write(tmp_path, "a.csv", "text,label\ngood,1\nbad,-1\nok,1.0\n"))
    assert data.label_names == ["-1", "1"] and [e.label for e in data.examples] == [1, 0, 1]
    assert any("mapped to classes 0..1" in n for n in data.report.notes)


@pytest.mark.parametrize(
    "labels, names",
    [
        (["Acceptable", "unacceptable"], ["unacceptable", "acceptable"]),
        (["True", "false"], ["false", "true"]),
        (["sports", "Tech", "politics"], ["politics", "sports", "tech"]),
        (["2 stars", "10 stars", "1 star"], ["1 star", "2 stars", "10 stars"]),
        (["Positive", "neutral", "NEGATIVE"], ["negative", "neutral", "positive"]),
    ],
)
def test_string_labels_are_ordered_sensibly(tmp_path, labels, names):
    body = "text,label\n" + "".join(f"text {i},{y}\n" for i, y in enumerate(labels))
    assert load(write(tmp_path, "a.csv", body)).label_names == names


def test_explicit_label_names_fix_the_order(tmp_path):
    path = write(tmp_path, "a.csv", "text,label\ngood,POS\nbad,neg\n")
    data = load(path, DataConfig(label_names=("pos", "neg")))
    assert data.label_names == ["pos", "neg"] and [e.label for e in data.examples] == [0, 1]
    with pytest.raises(DataError, match=r"row 1: label 'pos' is not one of the label names \['good', 'bad'\]"):
        load(path, DataConfig(label_names=("good", "bad")))


def test_numeric_label_names_match_by_name(tmp_path):
    path = write(tmp_path, "a.csv", "text,stars\ngood,5\nbad,1\nok,3\n")
    data = load(path, DataConfig(label_names=("1", "2", "3", "4", "5")))
    assert [data.label_names[e.label] for e in data.examples] == ["5", "1", "3"]


def test_explicit_label_names_and_int_labels_out_of_range(tmp_path):
    path = write(tmp_path, "a.csv", "text,label\ngood,1\nbad,0\nodd,5\n")
    with pytest.raises(DataError, match=r"row 3: label 5 .*\(or 0..1\)"):
        load(path, DataConfig(label_names=("negative", "positive")))


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("content", ["", "   \n\n"])
def test_empty_file(tmp_path, content):
    with pytest.raises(DataError, match=r"a.csv is empty: add a header row"):
        load(write(tmp_path, "a.csv", content))


def test_header_only(tmp_path):
    with pytest.raises(DataError, match=r"a.csv has a header \(text, label\) but no data rows"):
        load(write(tmp_path, "a.csv", "text,label\n"))


def test_empty_json_array(tmp_path):
    with pytest.raises(DataError, match=r"must hold a JSON array of objects.*\(empty\)"):
        load(write(tmp_path, "a.json", "[]"))


def test_broken_jsonl_line_is_named(tmp_path):
    with pytest.raises(DataError, match=r"a.jsonl line 2 is not valid JSON"):
        load(write(tmp_path, "a.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label: 0}\n'))


def test_ragged_csv_is_named(tmp_path):
    with pytest.raises(DataError, match=r"a.csv could not be read with separator comma-separated.*Quote fields"):
        load(write(tmp_path, "a.csv", "text,label\ngood,1\nbad, really bad,0,extra\n"))


def test_empty_text_and_missing_label_are_dropped_and_counted(tmp_path):
    body = "text,label\ngood,1\n,0\n   ,1\nbad,\nfine,NaN\nawful,0\n"
    data = load(write(tmp_path, "a.csv", body))
    assert texts(data) == ["good", "awful"]
    assert data.report.dropped == {"empty text": 2, "missing label": 2}
    assert data.report.dropped_rows == {"empty text": [2, 3], "missing label": [4, 5]}
    lines = data.report.lines()
    assert "Dropped 4 rows: empty text 2 (rows 2, 3); missing label 2 (rows 4, 5)." in lines
    assert "Read 6 rows from a.csv (CSV, comma-separated, UTF-8)." == lines[0]


def test_all_rows_dropped(tmp_path):
    with pytest.raises(DataError, match=r"all 2 rows were dropped \(missing label 2\)"):
        load(write(tmp_path, "a.csv", "text,label\ngood,\nbad,\n"))


def test_one_class_only(tmp_path):
    with pytest.raises(DataError, match=r"every kept row has the label 'positive' \(2 rows\).*at least two classes"):
        load(write(tmp_path, "a.csv", "text,label\ngood,positive\nfine,Positive\n"))


def test_a_label_seen_once_among_many_is_a_likely_typo(tmp_path):
    rows = balanced_rows() + [("a great film", "postive")]
    body = "text,label\n" + "".join(f"{t},{y}\n" for t, y in rows)
    path = write(tmp_path, "a.csv", body)
    with pytest.raises(DataError, match=r"'postive' \(row 13, a typo of 'positive'\?\) occur only once"):
        load(path)
    data = load(path, DataConfig(drop_rare_labels=True))
    assert data.label_names == ["negative", "positive"] and data.report.dropped == {"rare label": 1}
    assert data.report.dropped_rows == {"rare label": [13]}
    kept = load(path, DataConfig(label_names=("negative", "positive", "postive")))  # declared: a real class
    assert kept.label_counts() == {"negative": 6, "positive": 6, "postive": 1}


def test_a_free_text_column_is_not_a_label(tmp_path):
    body = "text,label\n" + "".join(f"text {i},note {i}\n" for i in range(30))
    with pytest.raises(DataError, match=r"has 30 different values in 30 rows.*--label-column"):
        load(write(tmp_path, "a.csv", body))


def test_binary_file(tmp_path):
    with pytest.raises(DataError, match=r"a.csv looks binary \(a NUL byte at offset 13, line 2\)"):
        load(_bytes(tmp_path, "a.csv", b"text,label\nab\x00\x01\x02,1\n"))


def test_excel_workbook(tmp_path):
    with pytest.raises(DataError, match=r"zip archive \(an Excel workbook\?\): export the sheet as CSV"):
        load(_bytes(tmp_path, "a.csv", b"PK\x03\x04rest-of-zip"))


def test_binary_cells_are_dropped(tmp_path):
    df = pd.DataFrame({"text": ["good", b"\xff\xfe\x00\x81", "bad"], "label": [1, 0, 0]})
    data = from_frame(df)
    assert data.report.dropped == {"binary content": 1} and texts(data) == ["good", "bad"]


def test_over_long_text_is_truncated_with_a_warning(tmp_path):
    body = f"text,label\n{'x' * 50},1\nbad,0\n"
    data = load(write(tmp_path, "a.csv", body), DataConfig(max_chars=20))
    assert texts(data)[0] == "x" * 20 and data.report.truncated_rows == [1]
    assert any("longer than 20 characters were truncated (row 1)" in w for w in data.report.warnings)


def test_over_large_file(tmp_path):
    path = write(tmp_path, "a.csv", "text,label\n" + "good,1\n" * 200)
    with pytest.raises(DataError, match=r"a.csv is 1.4 KB, above the limit of 0.001 MB: raise max_file_mb \(--max-"):
        load(path, DataConfig(max_file_mb=0.001))


def test_duplicates_are_reported_and_conflicts_warned(tmp_path):
    body = "text,label\ngood,1\nbad,0\ngood,1\ngood,0\n"
    data = load(write(tmp_path, "a.csv", body))
    assert len(data) == 4 and data.report.duplicates == 2 and data.report.duplicate_rows == [3, 4]
    assert data.report.conflicting_rows == [4]
    assert "Duplicates: 2 repeated texts (rows 3, 4), kept." in data.report.lines()
    dropped = load(write(tmp_path, "a.csv", body), DataConfig(drop_duplicates=True))
    assert texts(dropped) == ["good", "bad"] and dropped.report.dropped == {"duplicate": 2}


def test_from_frame_and_to_frame():
    df = pd.DataFrame({"sentence": ["good", "bad", ""], "label": ["yes", "no", "no"]})
    data = from_frame(df, source="upload.csv", label_names=["no", "yes"])
    assert data.label_names == ["no", "yes"] and data.report.source == "upload.csv"
    assert data.label_counts() == {"no": 1, "yes": 1} and data.report.dropped == {"empty text": 1}
    frame = data.to_frame()
    assert frame.to_dict("list") == {
        "row": [1, 2],
        "text": ["good", "bad"],
        "label": ["yes", "no"],
        "label_id": [1, 0],
    }


def test_report_to_dict_is_json():
    data = from_frame(pd.DataFrame({"text": ["a", "b"], "label": [0, 1]}))
    assert json.loads(json.dumps(data.report.to_dict()))["kept"] == 2


# ---------------------------------------------------------------------------------------------- sampling


def pool(per_class=(10, 10), offset=0):
    return [Example(f"c{c} #{i}", c) for c, n in enumerate(per_class) for i in range(n)]


def test_sample_is_balanced_interleaved_and_seeded():
    draw = sample_few_shot(pool(), k=8, seed=3, num_classes=2)
    assert len(draw) == 8 and [e.label for e in draw] == [0, 1] * 4
    assert len(set(draw)) == 8
    assert draw == sample_few_shot(pool(), k=8, seed=3, label_names=["neg", "pos"])
    assert draw != sample_few_shot(pool(), k=8, seed=4, num_classes=2)


def test_every_prefix_stays_balanced_and_smaller_k_is_a_prefix():
    big = sample_few_shot(pool((9, 7, 8)), k=15, seed=0, num_classes=3)
    for m in range(1, 6):
        assert Counter(e.label for e in big[: 3 * m]) == {0: m, 1: m, 2: m}
    assert sample_few_shot(pool((9, 7, 8)), k=6, seed=0, num_classes=3) == big[:6]


def test_a_class_draw_does_not_depend_on_other_classes():
    a = [e for e in sample_few_shot(pool((10, 10)), k=6, seed=1, num_classes=2) if e.label == 0]
    b = [e for e in sample_few_shot(pool((10, 30)), k=6, seed=1, num_classes=2) if e.label == 0]
    assert a == b


def test_k_not_divisible_uses_k_floor_c_per_class():
    draw = sample_few_shot(pool((5, 5, 5)), k=10, seed=0, num_classes=3)
    assert len(draw) == 9 and Counter(e.label for e in draw) == {0: 3, 1: 3, 2: 3}


def test_cod_real_half_is_the_balanced_first_half():
    draw = sample_few_shot(pool(), k=16, seed=0, num_classes=2)
    half = cod_real_half(draw)
    assert half == draw[:8] and Counter(e.label for e in half) == {0: 4, 1: 4}


def test_sampling_errors():
    with pytest.raises(DataError, match=r"k=1 is smaller than the number of classes \(2\)"):
        sample_few_shot(pool(), k=1, seed=0, num_classes=2)
    with pytest.raises(DataError, match=r"k=8 needs 4 examples per class but 'pos' has 2"):
        sample_few_shot(pool((10, 2)), k=8, seed=0, label_names=["neg", "pos"])
    with pytest.raises(DataError, match=r"label 2, outside 0..1"):
        sample_few_shot(pool((3, 3, 3)), k=4, seed=0, num_classes=2)


# ------------------------------------------------------------------------------------------------------- CLI


def test_cli_inspect_prints_counts_problems_and_duplicates(tmp_path, capsys):
    from cod.cli import main

    path = write(tmp_path, "reviews.csv", "review,sentiment\ngood,Positive\n,negative\nbad,negative\ngood,positive\n")
    assert main(["data", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Read 4 rows from reviews.csv" in out and "negative: 1, positive: 2" in out
    assert "empty text 1 (row 2)" in out and "Duplicates: 1 repeated texts (row 4), kept." in out
    assert "row      1  [positive]  good" in out


def test_cli_inspect_json_and_column_options(tmp_path, capsys):
    from cod.cli import main

    path = write(tmp_path, "a.csv", "a,b,c\ngood film,1,x\nbad film,0,y\n")
    assert main(["data", "inspect", str(path), "--text-column", "a", "--label-column", "b", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["label_counts"] == {"0": 1, "1": 1} and out["text_column"] == "a" and out["head"][0]["label"] == "1"


def test_cli_inspect_error_exits_2_with_the_message(tmp_path):
    import subprocess
    import sys

    path = write(tmp_path, "a.csv", "text,label\n")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "cod", "data", "inspect", str(path)], capture_output=True, text=True, cwd=root
    )
    assert proc.returncode == 2
    assert "error: a.csv has a header (text, label) but no data rows" in proc.stderr


def test_cli_sample_from_a_file(tmp_path, capsys):
    from cod.cli import main

    rows = balanced_rows()
    path = write(tmp_path, "a.csv", "text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    assert main(["data", "sample", str(path), "-k", "4", "--seed", "1", "--json"]) == 0
    draw = json.loads(capsys.readouterr().out)
    assert [d["label"] for d in draw] == ["negative", "positive"] * 2
