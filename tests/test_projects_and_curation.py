"""Projects are one thing for the app and the CLI (finding 2 of issue 15), and one rule says which counterfactual of
an example trains (finding 3): real SQLite store files, the app's handlers without a server, the CLI in-process."""

from __future__ import annotations

import json

from cod.cli import main
from cod.counterfactuals.base import Counterfactual
from cod.data.readers import Example
from cod.experiment import FEW_SHOT, training_counterfactuals
from cod.store.curation import choose
from cod.store.projects import Store
from components import counterfactuals as C
from components import data as D
from components.projects import ensure_project, open_project
from components.state import PageState
from tests.test_app_handlers import generate, models, services  # noqa: F401  (fixtures)
from tests.test_experiment import texts, write_csv

LABELS = ["negative", "positive"]


# ---- finding 2: a project is one thing -------------------------------------------------------------------------


def test_cli_project_opens_in_the_app_and_app_project_goes_back_to_the_cli(services, models, tmp_path, capsys):  # noqa: F811 (fixtures)
    db = str(services.store_path)
    data = write_csv(tmp_path / "reviews.csv", 20)
    assert (
        main(
            [
                "project",
                "--db",
                db,
                "create",
                "--name",
                "from-cli",
                "--data",
                str(data),
                "--k",
                "8",
                "--seed",
                "1",
                "--teacher",
                models[0],
                "--student",
                models[1],
            ]
        )
        == 0
    )
    assert "Validation: 32 rows of the 40 were not drawn" in capsys.readouterr().out

    # The app opens it with its draw, data and held-out split, and curates it.
    state = open_project(services, PageState(), "from-cli")
    assert (state.k, state.seed, len(state.few_shot), len(state.data.examples)) == (8, 1, 8, 40)
    assert [e.label for e in state.few_shot] == [0, 1] * 4
    assert len(state.validation) == 32 and not texts(state.validation) & texts(state.few_shot)
    assert (state.teacher, state.student) == (models[0], models[1])
    assert "from-cli" in D.report_html(state) or "reviews.csv" in D.report_html(state)
    generate(services, state)
    assert len(Store(db).counterfactuals("from-cli")) == 4

    # A project made in the app is listed, shown and exported by the CLI.
    app_state = PageState(teacher=models[0], student=models[1])
    D.load_upload(app_state, data)
    D.sample(app_state, 8, 0)
    name = ensure_project(services, app_state)
    assert main(["project", "--db", db, "list", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(listed) == {"from-cli", name} and listed[name]["drawn"] == listed["from-cli"]["drawn"] == 8
    assert main(["project", "--db", db, "show", "--name", name]) == 0
    shown = capsys.readouterr().out
    assert "few-shot draw 8" in shown and "validation 32" in shown and "source rows 40" in shown
    out = tmp_path / "export"
    assert main(["project", "--db", db, "export", "--name", "from-cli", "--out", str(out)]) == 0
    assert main(["project", "--db", db, "import", str(out), "--name", "copy"]) == 0
    capsys.readouterr()

    # The copy made by the CLI opens in the app with the same draw.
    copy = open_project(services, PageState(), "copy")
    assert copy.few_shot == state.few_shot and copy.validation == state.validation


def test_a_project_stored_without_a_draw_gets_its_seeded_draw_when_opened(services, tmp_path):  # noqa: F811 (fixtures)
    store = services.store()
    pool = [Example(f"the film number {i} was {'good' if i % 2 else 'bad'} .", i % 2) for i in range(24)]
    store.create_project("old", LABELS, examples=pool, task="reviews", data_source="reviews.csv", k=8, seed=2)
    state = open_project(services, PageState(), "old")  # before: DataError "Unknown task 'reviews'"
    assert len(state.few_shot) == 8 and len(state.data.examples) == 24
    assert store.examples("old", FEW_SHOT) == state.few_shot  # kept, so it opens the same next time
    assert not texts(state.validation) & texts(state.few_shot)


# ---- finding 3: which counterfactual trains ----------------------------------------------------------------------


def cf(text: str, new: str, label: int, flipped: bool = True) -> Counterfactual:
    p = [0.2, 0.8] if label else [0.8, 0.2]
    return Counterfactual(text, label, p, new, 1 - label, p[::-1] if flipped else p, "lexical")


def test_the_edit_else_the_accepted_one_trains_and_unreviewed_only_when_asked(tmp_path):
    store = Store(tmp_path / "cod.db")
    examples = [
        Example(text, label)
        for text, label in [("a good film", 1), ("a bad film", 0), ("great fun", 1), ("a dull mess", 0)]
    ]
    store.create_project("p", LABELS, examples=examples)
    first = store.add_counterfactuals(
        "p",
        [
            cf("a good film", "a bad film", 1),
            cf("a bad film", "a fine film", 0),
            cf("great fun", "great pain", 1),
            cf("a dull mess", "a fun mess", 0),
        ],
    )
    store.accept(first[0].id)  # accepted, then a newer proposal nobody reviewed
    store.edit(first[1].id, "a truly fine film", [0.1, 0.9])  # edited, then a newer proposal accepted
    store.reject(first[3].id)  # rejected: never trains
    later = store.add_counterfactuals("p", [cf("a good film", "a sad film", 1), cf("a bad film", "a good film", 0)])
    store.accept(later[1].id)

    chosen = [c.counterfactual for c in training_counterfactuals(store, "p")]
    assert chosen == ["a bad film", "a truly fine film"]  # the accepted one; the edit beats a later acceptance
    assert [c.counterfactual for c in store.curated("p")] == chosen  # the store's "ready for distillation" agrees
    with_unreviewed = [c.counterfactual for c in training_counterfactuals(store, "p", include_unreviewed=True)]
    assert with_unreviewed == ["a bad film", "a truly fine film", "great pain"]  # never the rejected one
    assert len(choose(store.counterfactuals("p"))) == 2


def test_the_app_trains_the_same_counterfactual_as_the_library(services, models, tmp_path):  # noqa: F811 (fixtures)
    state = PageState(teacher=models[0], student=models[1])
    D.load_upload(state, write_csv(tmp_path / "reviews.csv", 20))
    D.sample(state, 8, 0)
    generate(services, state)
    store = services.store()
    records = C.current_records(services, state)
    kept = records[0]
    store.accept(kept.id)
    # A newer proposal for the same example that nobody reviewed (regenerated elsewhere, or by another session).
    old = kept.counterfactual
    newer = Counterfactual(
        old.text,
        old.label,
        old.teacher_probs,
        kept.text + " !",
        old.target,
        old.counterfactual_teacher_probs,
        "lexical",
    )
    store.add_counterfactuals(state.project, [newer], example_ids=[kept.example_id])
    app = [c.counterfactual for c in C.curated(services, state)]
    assert app == [c.counterfactual for c in training_counterfactuals(store, state.project)] == [kept.text]


def test_a_reopened_project_keeps_its_held_out_choice_in_the_data_tab(services, tmp_path):  # noqa: F811 (fixtures)
    data = write_csv(tmp_path / "reviews.csv", 20)
    pool = tmp_path / "pool.csv"
    pool.write_text("text\n" + "".join(f"an unlabelled review {i} .\n" for i in range(5)))
    state = D.load_upload(PageState(), data)
    assert D.held_out_label(state) == "Rows not drawn (default)"
    D.sample(D.set_held_out(state, "Unlabelled texts (agreement with the teacher)", pool), 8, 0)
    name = ensure_project(services, state)
    reopened = open_project(services, PageState(), name)
    assert reopened.splits.selection == "teacher_agreement" and len(reopened.splits.unlabelled) == 5
    assert D.held_out_label(reopened) == "Unlabelled texts (agreement with the teacher)"
    assert D.sample(reopened, 8, 1).splits.selection == "teacher_agreement"  # a redraw keeps the choice
    assert D.held_out_label(D.load_upload(reopened, data)) == "Rows not drawn (default)"  # a new file starts afresh
