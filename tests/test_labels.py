"""Label handling (finding 6 of issue 15): normalisation is reported with its mapping, and a label column is taken
only from a label-like name or the user's choice, never guessed from content."""

from __future__ import annotations

import pytest

from cod.config import DataConfig
from cod.data.labels import folding_note
from cod.data.readers import load
from cod.errors import DataError


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_case_and_space_folding_is_reported_with_the_mapping_and_rows_changed(tmp_path):
    rows = [
        "great fun,Positive",
        "so moving,positive",
        "a gem, Positive ",
        "awful mess,negative",
        "dull,negative",
        "fine,positive",
    ]
    data = load(write(tmp_path, "a.csv", "text,label\n" + "\n".join(rows) + "\n"))
    assert data.label_names == ["negative", "positive"]
    assert (
        "Labels normalised (case folded, spaces stripped): 'positive', ' Positive ', 'Positive' -> 'positive' "
        "(2 rows changed)."
    ) in data.report.lines()


def test_no_note_when_nothing_changed(tmp_path):
    data = load(write(tmp_path, "a.csv", "text,label\ngood,positive\nbad,negative\n"))
    assert not any("normalised" in line for line in data.report.lines())


def test_folding_note_counts_every_changed_row_under_explicit_names():
    pairs = [("POS", "pos"), ("pos", "pos"), ("Pos ", "pos"), ("Neg", "neg"), (1, "1")]
    assert folding_note(pairs) == (
        "Labels normalised (case folded, spaces stripped): 'POS', 'Pos ', 'pos' -> 'pos'; "
        "'Neg' -> 'neg' (3 rows changed)."
    )


def test_a_categorical_column_that_is_not_named_like_a_label_is_never_taken_as_the_label(tmp_path):
    rows = "".join(f"review number {i} of the film,{['imdb', 'rottentomatoes'][i % 2]}\n" for i in range(20))
    path = write(tmp_path, "reviews.csv", "review,site\n" + rows)
    with pytest.raises(DataError) as err:
        load(path)
    message = str(err.value)
    assert "['review', 'site']" in message and "--label-column" in message and "Label column" in message
    assert err.value.columns == ["review", "site"]
    data = load(path, DataConfig(label_column="site"))  # the user's choice is taken
    assert data.label_column == "site" and data.label_names == ["imdb", "rottentomatoes"]


def test_the_app_upload_names_its_label_control_and_takes_the_choice(tmp_path):
    from components import data as D
    from components.state import PageState

    rows = "".join(f"review number {i} of the film,{['imdb', 'rt'][i % 2]}\n" for i in range(20))
    path = write(tmp_path, "reviews.csv", "review,site\n" + rows)
    with pytest.raises(DataError, match="Label column"):
        D.load_upload(PageState(), path)
    assert D.upload_columns(path) == ["review", "site"]  # what the Label column control then offers
    state = D.load_upload(PageState(), path, label="site")
    assert state.label_names == ["imdb", "rt"] and state.mapping["label"] == "site"
