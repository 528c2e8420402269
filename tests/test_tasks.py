"""cod.data.tasks: the paper's preprocessing on small local files shaped like the Hub datasets, and load_task."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cod.data import tasks
from cod.data.readers import Example
from cod.data.tasks import (
    TASKS,
    load_task,
    prepare_amazon,
    prepare_glue,
    prepare_imdb,
    prepare_sentiment140,
    prepare_yelp,
    rotten_tomatoes,
)
from cod.errors import DataError


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def batch(path):
    """A file read the way `datasets` batched map hands it over: a dict of column lists."""
    df = (
        pd.read_json(path, lines=True)
        if path.suffix == ".jsonl"
        else pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    )
    return {c: df[c].tolist() for c in df.columns}


def test_imdb_keeps_reviews_of_at_most_300_characters(tmp_path):
    rows = [
        {"text": "Great.<br /><br />Loved it.", "label": 1},
        {"text": "x" * 300, "label": 0},
        {"text": "y" * 301, "label": 1},
        {"text": "   ", "label": 0},
    ]
    out = prepare_imdb(batch(jsonl(tmp_path / "imdb.jsonl", rows)))
    assert out == {"text": ["Great.  Loved it.", "x" * 300], "label": [1, 0]}


def test_amazon_keeps_content_of_at_most_60_characters(tmp_path):
    path = tmp_path / "amazon.csv"
    pd.DataFrame(
        {"label": [1, 0, 1], "title": ["Nice", "Bad", "Long"], "content": ["Works well.", "Broke in a day.", "z" * 61]}
    ).to_csv(path, index=False)
    assert prepare_amazon(batch(path)) == {"text": ["Works well.", "Broke in a day."], "label": [1, 0]}


def test_yelp_stars_to_polarity_with_three_dropped(tmp_path):
    rows = [{"label": s - 1, "text": f"{s} stars"} for s in (1, 2, 3, 4, 5)] + [{"label": 4, "text": "w" * 251}]
    out = prepare_yelp(batch(jsonl(tmp_path / "yelp.jsonl", rows)))
    assert out == {"text": ["1 stars", "2 stars", "4 stars", "5 stars"], "label": [0, 0, 1, 1]}
    assert prepare_yelp({"stars": [1, 3, 5], "text": ["a", "b", "c"]}) == {"text": ["a", "c"], "label": [0, 1]}


def test_sentiment140_zero_four_with_neutral_dropped(tmp_path):
    rows = [
        {"text": "sad day", "date": "d", "user": "u", "sentiment": 0, "query": "NO_QUERY"},
        {"text": "meh", "date": "d", "user": "u", "sentiment": 2, "query": "NO_QUERY"},
        {"text": "happy!", "date": "d", "user": "u", "sentiment": 4, "query": "NO_QUERY"},
    ]
    assert prepare_sentiment140(batch(jsonl(tmp_path / "s140.jsonl", rows))) == {
        "text": ["sad day", "happy!"],
        "label": [0, 1],
    }


def test_glue_drops_hidden_test_labels(tmp_path):
    path = tmp_path / "sst2.tsv"
    path.write_text("sentence\tlabel\tidx\nit 's a charming film \t1\t0\na mess\t0\t1\nunknown\t-1\t2\n")
    assert prepare_glue(batch(path)) == {"text": ["it 's a charming film", "a mess"], "label": [1, 0]}


def test_load_task_imdb_from_local_files(tmp_path):
    train = [{"text": f"review {i} " + ("good" if i % 2 else "bad"), "label": i % 2} for i in range(40)]
    train.append({"text": "long " * 100, "label": 1})  # over 300 characters: dropped
    test = [{"text": "fine film", "label": 1}, {"text": "dull film", "label": 0}]
    files = {"train": str(jsonl(tmp_path / "train.jsonl", train)), "test": str(jsonl(tmp_path / "test.jsonl", test))}
    splits = load_task("imdb", data_files=files, cache_dir=tmp_path / "cache")
    assert splits.name == "imdb" and splits.label_names == ["negative", "positive"]
    assert len(splits.validation) == 8 and len(splits.train) == 32  # 40 // 5 carved from train
    assert splits.test == [Example("fine film", 1), Example("dull film", 0)]
    assert not set(splits.train) & set(splits.validation)
    again = load_task("imdb", data_files=files, cache_dir=tmp_path / "cache", max_train=10)
    assert again.validation == splits.validation and again.train == splits.train[:10]


def test_load_task_cola_uses_glue_validation_as_test(tmp_path):
    rows = "".join(f"sentence {i} .\t{i % 2}\t{i}\n" for i in range(10))
    (tmp_path / "train.tsv").write_text("sentence\tlabel\tidx\n" + rows)
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\tidx\nThe more we study .\t1\t0\n")
    files = {"train": str(tmp_path / "train.tsv"), "validation": str(tmp_path / "dev.tsv")}
    splits = load_task("cola", data_files=files, cache_dir=tmp_path / "cache")
    assert splits.label_names == ["unacceptable", "acceptable"]
    assert splits.test == [Example("The more we study .", 1)]
    assert len(splits.train) + len(splits.validation) == 10


def test_load_task_names_a_missing_column(tmp_path):
    files = {
        "train": str(jsonl(tmp_path / "t.jsonl", [{"review": "x", "label": 0}])),
        "test": str(tmp_path / "t.jsonl"),
    }
    with pytest.raises(DataError, match=r"lacks the column\(s\) \['text'\]; it has \['review', 'label'\]"):
        load_task("imdb", data_files=files, cache_dir=tmp_path / "cache")


def test_paper_tasks_offline_are_a_clear_error():
    with pytest.raises(
        DataError,
        match=r"Could not load task 'sst2' from the Hub dataset 'nyu-mll/glue' \(sst2\).*'demo' task works offline",
    ):
        load_task("sst2")


def test_unknown_task_lists_the_tasks():
    with pytest.raises(DataError, match=r"Unknown task 'sst-5': built-in tasks are \['amazon', 'cola'"):
        load_task("sst-5")


def test_every_task_is_described():
    assert set(TASKS) == {"rotten_tomatoes", "sst2", "cola", "imdb", "sentiment140", "amazon", "yelp"}
    for name, info in TASKS.items():
        assert info.name == name and info.description and len(info.label_names) == 2


def test_demo_and_rotten_tomatoes_are_the_embedded_task():
    demo = load_task("demo")
    assert demo is load_task("rotten_tomatoes") is rotten_tomatoes()
    assert demo.label_names == ["negative", "positive"] and len(demo.test) == tasks.DEMO_TEST_SIZE
    assert len(demo.validation) == tasks.DEMO_VALIDATION_SIZE and len(demo.train) > 9000
    seen = {e.text for e in demo.test}
    assert not seen & {e.text for e in demo.train} and not seen & {e.text for e in demo.validation}
