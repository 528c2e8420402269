"""Valid project names from any upload's file name; run and export folders that never collide."""

from __future__ import annotations

import shutil
import threading
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cod.counterfactuals.base import Counterfactual
from cod.data.readers import Example
from cod.paths import unique_folder
from cod.store import project_name_for
from cod.store.names import MAX_NAME_CHARS
from cod.store.projects import Store
from components import data as D
from components import distill as R
from components import export as X
from components.projects import ensure_project
from components.state import PageState
from tests.test_app_handlers import EXAMPLE, drawn, models, services, wait  # noqa: F401 (fixtures)


class FrozenClock(datetime):
    """Every call in the same second, as two visitors' clicks can be."""

    @classmethod
    def now(cls, tz=None):
        return cls(2026, 11, 30, 12, 0, 0, tzinfo=tz)


@pytest.fixture
def same_second(monkeypatch):
    monkeypatch.setattr("cod.paths.datetime", FrozenClock)
    for module in ("components.distill", "components.export"):  # where older code read the clock itself
        monkeypatch.setattr(f"{module}.datetime", FrozenClock, raising=False)


# ------------------------------------------------------------------------------------------------ project names


@pytest.mark.parametrize(
    "filename, expected",
    [
        ("reviews.csv", "reviews"),
        ("reviews.csv.gz", "reviews"),
        ("C:\\Users\\me\\My Data (final).CSV", "My-Data-(final)"),
        ("../../etc/passwd", "passwd"),
        ("tab\tand\x07bell\u202e.tsv", "tab-and-bell"),
        ("日本語のレビュー.jsonl", "日本語のレビュー"),
        ("....csv", "project"),
        ("", "project"),
    ],
)
def test_project_name_from_odd_file_names(filename, expected):
    assert project_name_for(filename) == expected


def test_long_names_are_shortened_and_taken_names_numbered():
    long = "customer reviews " * 30 + ".csv"
    first = project_name_for(long, suffix="-k8-seed0")
    assert len(first) == MAX_NAME_CHARS and first.startswith("customer-reviews-") and first.endswith("-k8-seed0")
    second = project_name_for(long, [first.upper()], suffix="-k8-seed0")  # the store's names, compared ignoring case
    assert len(second) == MAX_NAME_CHARS and second.endswith("-k8-seed0-2") and second != first


@given(st.lists(st.text(max_size=300), min_size=1, max_size=6))
def test_every_generated_name_is_accepted_by_the_store(tmp_path_factory, filenames):
    with Store(tmp_path_factory.mktemp("names") / "cod.db") as store:
        for filename in filenames:
            name = project_name_for(filename, [p.name for p in store.projects()], suffix="-k8-seed0")
            store.create_project(name, ["negative", "positive"])  # never refused, never a duplicate


def test_an_upload_with_a_long_odd_name_still_makes_a_project(services, tmp_path):  # noqa: F811
    upload = tmp_path / ("My reviews: the complete collection, " * 6 + "\u202e final.csv")
    shutil.copy(EXAMPLE, upload)
    state = PageState(teacher=services.default_teacher, student=services.default_student)
    D.sample(D.load_upload(state, upload), 8, 0)
    name = ensure_project(services, state)  # Generate and Distill start here
    assert name.startswith("My-reviews-the-complete-collection") and name.endswith("-k8-seed0")
    assert len(name) <= MAX_NAME_CHARS and services.store().project(name).name == name


def test_cli_import_without_a_name_uses_the_file_name(tmp_path, capsys):
    from cod.cli import main

    db = tmp_path / "cod.db"
    with Store(db) as store:
        store.create_project("src", ["negative", "positive"], examples=[Example("a dull film", 0)])
        pair = Counterfactual("a dull film", 0, [0.9, 0.1], "a fun film", 1, [0.2, 0.8], "lexical")
        store.add_counterfactuals("src", [pair])
    exported = Store(db).export("src", tmp_path / ("exported pairs " * 12 + ".jsonl"))
    assert main(["project", "--db", str(db), "import", str(exported)]) == 0
    assert main(["project", "--db", str(db), "import", str(exported)]) == 0
    imported = [p.name for p in Store(db).projects() if p.name != "src"]
    first, second = sorted(imported, key=lambda n: n.endswith("-2"))
    assert first.startswith("exported-pairs-exported-pairs") and len(first) == MAX_NAME_CHARS
    assert second == first[:-2] + "-2"


# ------------------------------------------------------------------------------------------- unique folders


def test_unique_folders_in_the_same_second_from_many_threads(tmp_path, same_second):
    made = []
    threads = [threading.Thread(target=lambda: made.append(unique_folder(tmp_path, "proj/../x"))) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 20 and all(p.parent == tmp_path and p.is_dir() for p in made)
    assert sorted(p.name for p in made)[:2] == ["proj-..-x-20261130-120000", "proj-..-x-20261130-120000-10"]


def test_two_runs_and_two_exports_in_the_same_second_never_share_a_path(services, drawn, same_second):  # noqa: F811
    config = R.make_config(drawn, "CE only (no teacher)", False, 20, 2, 1, 1, 1e-3, 8, False, 8)
    first = wait(services.worker.get(R.start_run(services, drawn, "s1", config)))
    second = wait(services.worker.get(R.start_run(services, drawn, "s2", config)))
    assert first.status == second.status == "done", (first.error, second.error)
    folders = [run.artifact_dir for run in services.store().runs(drawn.project)]
    assert len(set(folders)) == 2
    exports = [X.export_pairs(services, drawn, "all") for _ in range(2)]
    assert exports[0][0].parent != exports[1][0].parent
    zips = [X.zip_student(services, first.result) for _ in range(2)]
    assert zips[0] != zips[1] and zips[0].name == zips[1].name == f"student-run{first.result}.zip"
