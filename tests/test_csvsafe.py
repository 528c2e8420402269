"""Formula-safe CSV: every CSV the library writes keeps user text from running as a spreadsheet formula."""

from __future__ import annotations

import csv

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from cod.counterfactuals.base import Counterfactual
from cod.csvsafe import FORMULA_STARTS, restore_cell, safe_cell, write_csv
from cod.data.readers import Example
from cod.store.projects import Store

HOSTILE = [
    '=HYPERLINK("http://x","click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\tTAB",
    "\rCR",
    "'=already quoted",
    "''-two apostrophes",
    "plain text",
    "'just an apostrophe",
    "",
    "a lone\rCR inside",
]


@given(st.text(alphabet=st.sampled_from(list("'=+-@\t\rab ")), max_size=8) | st.text(max_size=20))
def test_safe_cells_never_start_a_formula_and_restore_exactly(text):
    safe = safe_cell(text)
    assert not safe.startswith(FORMULA_STARTS)
    assert restore_cell(safe) == text


def test_numbers_stay_numbers(tmp_path):
    path = write_csv(pd.DataFrame({"delta": [-0.25, 1.5], "name": ["-x", "y"]}), tmp_path / "t.csv")
    assert path.read_text().splitlines() == ["delta,name", "-0.25,'-x", "1.5,y"]


def _cells(path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return [cell for row in csv.reader(f) for cell in row]


def test_store_csv_export_is_formula_safe_and_imports_back(tmp_path):
    store = Store(tmp_path / "cod.db")
    examples = [Example(text, i % 2) for i, text in enumerate(HOSTILE[:7])]
    store.create_project("evil", ["negative", "positive"], examples=examples, data_source="@evil.csv")
    pairs = [
        Counterfactual(e.text, e.label, [0.5, 0.5], new, 1 - e.label, [0.4, 0.6], "lexical")
        for e, new in zip(examples, HOSTILE[5:])
    ]
    store.add_counterfactuals("evil", pairs)
    out = store.export("evil", tmp_path / "evil.csv")
    cells = _cells(out)
    assert '\'=HYPERLINK("http://x","click")' in cells and "'-2+3" in cells and "'''-two apostrophes" in cells
    assert [c for c in cells if c.startswith(FORMULA_STARTS)] == []
    store.import_file(out, "copy")
    copied = [(r.text, r.record["text"]) for r in store.counterfactuals("copy")]
    assert copied == [(r.text, r.record["text"]) for r in store.counterfactuals("evil")]
    assert [text for text, _ in copied] == HOSTILE[5:]
    assert store.examples("copy") == examples
    store.close()


def test_sweep_tables_are_formula_safe(tmp_path):
    import json

    from cod.config import SweepConfig
    from cod.sweep.tables import write_tables

    cell = tmp_path / "cells" / "kd-k8-s0"
    cell.mkdir(parents=True)
    row = {"method": "kd", "k": 8, "seed": 0, "accuracy": 0.75, "status": "error", "error": "=student @ '-x' failed"}
    (cell / "cell.json").write_text(json.dumps({"row": row}))
    write_tables(SweepConfig(ks=(8,), seeds=(0,), methods=("kd",)), tmp_path, None)
    cells = _cells(tmp_path / "results.csv")
    assert "'=student @ '-x' failed" in cells and "0.75" in cells
