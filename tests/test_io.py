"""cod.io: atomic writes and JSONL with clear errors, and the readers that use them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cod.errors import DataError
from cod.io import atomic_path, read_jsonl, write_json, write_jsonl, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    write_json(path, {"accuracy": 0.5})
    with pytest.raises(RuntimeError, match="disk"):
        with atomic_path(path) as tmp:
            tmp.write_text('{"accuracy": ')  # half a file, then a crash
            raise RuntimeError("disk full")
    assert json.loads(path.read_text()) == {"accuracy": 0.5}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_json_values_are_made_plain(tmp_path):
    path = write_json(tmp_path / "m.json", {"nan": math.nan, "np": np.float32(0.25), "arr": np.arange(2), "b": {2: 1}})
    assert json.loads(path.read_text()) == {"nan": None, "np": 0.25, "arr": [0, 1], "b": {"2": 1}}
    write_text(tmp_path / "t.md", "é")
    assert (tmp_path / "t.md").read_text(encoding="utf-8") == "é"


def test_jsonl_round_trip_and_errors_name_file_line_and_fix(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", [{"text": "a"}, {"text": "b", "x": np.int64(3)}])
    assert read_jsonl(path) == [{"text": "a"}, {"text": "b", "x": 3}]
    path.write_text('{"text": "a"}\n\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"rows.jsonl line 3 is not valid JSON .*Each line must be one JSON object"):
        read_jsonl(path)
    path.write_text('{"text": "a"}\n[1, 2]\n')
    with pytest.raises(DataError, match="rows.jsonl line 2 is a JSON list, not an object"):
        read_jsonl(path)
    path.write_text('{"text": "a"}\n{"label": 1}\n')
    with pytest.raises(DataError, match=r"rows.jsonl line 2 is not a valid record \(KeyError"):
        read_jsonl(path, convert=lambda row: row["text"])
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DataError, match="not UTF-8"):
        read_jsonl(path)
    with pytest.raises(DataError, match="does not exist"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_a_damaged_counterfactual_file_is_a_clear_error(tmp_path):
    from cod.counterfactuals.base import Counterfactual, read_counterfactuals, write_counterfactuals

    names = ["negative", "positive"]
    cfs = [Counterfactual("bad film", 0, [0.9, 0.1], "good film", 1, [0.2, 0.8], "test")]
    path = write_counterfactuals(tmp_path / "cfes.jsonl", cfs, names)
    assert read_counterfactuals(path, names)[0].counterfactual == "good film"
    path.write_text(path.read_text() + '{"text": "x", "label": "negative"\n')  # cut short by a crash
    with pytest.raises(DataError, match=r"cfes.jsonl line 2 is not valid JSON"):
        read_counterfactuals(path, names)
    path.write_text('{"text": "x", "label": "negative"}\n')  # no counterfactual field
    with pytest.raises(DataError, match=r"cfes.jsonl line 1 is not a valid record \(KeyError: 'counterfactual'\)"):
        read_counterfactuals(path, names)


def test_cli_distill_with_a_broken_counterfactual_file_prints_one_clear_line(tiny_classifier, tmp_path, capsys):
    from cod.cli import main

    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "".join(f"text {i},{['negative', 'positive'][i % 2]}\n" for i in range(20)))
    cfs = tmp_path / "cfes.jsonl"
    cfs.write_text("not json\n")
    code = main(
        [
            "distill",
            "--data",
            str(data),
            "--teacher",
            str(tiny_classifier),
            "--cod",
            "--k",
            "4",
            "--counterfactuals",
            str(cfs),
            "--out",
            str(tmp_path / "o"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "cfes.jsonl line 1 is not valid JSON" in err and "Traceback" not in err
