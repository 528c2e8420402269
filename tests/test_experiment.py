"""The experiment core: the draw and held-out rules (findings 1 and 4 of issue 15), shared by the app and the CLI."""

from __future__ import annotations

import json

import pytest

from cod.data.readers import Example
from cod.data.splits import held_out, sample_few_shot, without_drawn
from cod.experiment import file_source, open_source, split
from tests.test_distill import _texts

POS = ["good", "great", "fun", "lovely", "brilliant", "moving", "best", "enjoyable", "charming"]
NEG = ["bad", "awful", "boring", "dull", "terrible", "worst", "tedious", "bland", "mess"]


def write_csv(path, n_per_class: int, header: str = "text,label", extra=None):
    """A CSV of distinct reviews, n per class (classes alternate), optionally with an extra column."""
    rows = [header]
    for i in range(2 * n_per_class):
        label = ["negative", "positive"][i % 2]
        word = (POS if i % 2 else NEG)[i % 9]
        text = f"the film number {i} was {word} ."
        rows.append(f'"{text}",{label}' + (f",{extra(i)}" if extra else ""))
    path.write_text("\n".join(rows) + "\n")
    return path


def texts(examples) -> set[str]:
    return {e.text for e in examples}


# ---- finding 1: validation never holds a drawn example, whatever draws came before ----------------------------


def test_app_redraw_never_puts_training_examples_in_validation(tmp_path):
    from components import data as D
    from components.state import PageState

    state = PageState()
    D.load_upload(state, write_csv(tmp_path / "reviews.csv", 100))
    D.sample(state, 16, 0)
    assert not texts(state.validation) & texts(state.few_shot)
    D.sample(state, 64, 1)  # a second, larger draw with another seed
    assert len(state.few_shot) == 64
    assert not texts(state.validation) & texts(state.few_shot), "validation holds examples of the new draw"
    assert len(state.validation) == 200 - 64  # every row not drawn, at most 500
    assert "136 rows of the 200 were not drawn" in D.report_html(state)


def test_held_out_is_the_complement_of_the_draw_for_every_draw():
    pool = [Example(f"text {i}", i % 2) for i in range(300)]
    for k, seed in [(8, 0), (64, 1), (128, 2)]:
        draw = sample_few_shot(pool, k, seed, label_names=["a", "b"])
        validation = held_out(pool, draw)
        assert not texts(validation) & texts(draw) and len(validation) == 300 - k
    assert held_out(pool, sample_few_shot(pool, 8, 0, num_classes=2), size=10) == held_out(
        pool, sample_few_shot(pool, 8, 0, num_classes=2), size=10
    )  # seeded: the same rows again


def test_a_given_validation_set_loses_the_drawn_texts_and_says_so(tmp_path):
    path = write_csv(tmp_path / "train.csv", 20)
    source = open_source(path, validation=path)  # the worst case: validation is the training file itself
    splits = split(source, 8, 0)
    assert splits.dropped_drawn == 8 and not texts(splits.validation) & texts(splits.few_shot)
    assert any("Removed 8 validation example(s)" in line for line in splits.lines())
    kept, dropped = without_drawn(splits.few_shot, splits.few_shot)
    assert (kept, dropped) == ([], 8)


# ---- finding 4: a user with exactly k labels trains on all k ------------------------------------------------------


def test_exactly_k_labels_train_on_all_k_with_no_held_out(tmp_path):
    source = file_source(write_csv(tmp_path / "sixteen.csv", 8))
    splits = split(source, 16, 0)
    assert len(splits.few_shot) == 16 and splits.validation == [] and splits.selection == "last_step"
    assert any("keeps the last step" in line for line in splits.lines())


def _cli(data, teacher, student, out, *extra):
    return [
        "distill",
        "--data",
        str(data),
        "--teacher",
        str(teacher),
        "--student",
        str(student),
        "--k",
        "16",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--max-length",
        "32",
        "--evaluations",
        "2",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def test_cli_distils_a_file_of_exactly_k_examples_on_all_of_them(
    tmp_path, tiny_classifier, tiny_student, cod_home, capsys
):
    from cod.cli import main

    data = write_csv(tmp_path / "sixteen.csv", 8)
    out = tmp_path / "run"
    assert main(_cli(data, tiny_classifier, tiny_student, out)) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_examples"] == 16 and metrics["real_examples"] == 16
    assert metrics["selection"] == "last_step" and metrics["validation_size"] == 0
    assert metrics["best_step"] == metrics["steps"]
    captured = capsys.readouterr()
    assert "keeps the last step" in captured.err and "checkpoint: the last step" in captured.out


def test_cli_selects_on_teacher_agreement_with_unlabelled_texts(
    tmp_path, tiny_classifier, tiny_student, cod_home, capsys
):
    from cod.cli import main

    data = write_csv(tmp_path / "sixteen.csv", 8)
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"review": e.text}) + "\n" for e in _texts(12, 5)))
    out = tmp_path / "run"
    assert main(_cli(data, tiny_classifier, tiny_student, out, "--unlabelled", str(pool))) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_examples"] == 16 and metrics["selection"] == "teacher_agreement"
    assert metrics["unlabelled_size"] == 12 and 0.0 <= metrics["student_teacher_agreement"] <= 1.0
    assert "agreement with the teacher" in capsys.readouterr().out
    assert "12 unlabelled texts" in (out / "README.md").read_text()


def test_cli_says_how_many_rows_a_default_held_out(tmp_path, tiny_classifier, tiny_student, cod_home, capsys):
    from cod.cli import main

    data = write_csv(tmp_path / "forty.csv", 20)
    out = tmp_path / "run"
    assert main(_cli(data, tiny_classifier, tiny_student, out, "--epochs", "1")) == 0
    assert "Validation: 24 rows of the 40 were not drawn" in capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selection"] == "validation" and metrics["validation_size"] == 24


def test_the_app_data_tab_offers_the_same_held_out_choices(tmp_path):
    from components import data as D
    from components.state import PageState

    state = D.load_upload(PageState(), write_csv(tmp_path / "forty.csv", 20))
    pool = tmp_path / "pool.csv"
    pool.write_text("text\n" + "".join(f"an unlabelled review {i} .\n" for i in range(7)))
    assert D.sample(state, 8, 0).splits.selection == "validation"
    D.set_held_out(state, "Unlabelled texts (agreement with the teacher)", pool)
    assert D.sample(state, 8, 0).splits.unlabelled == [f"an unlabelled review {i} ." for i in range(7)]
    assert state.splits.selection == "teacher_agreement"
    assert D.sample(D.set_held_out(state, "None: fixed schedule, last step"), 8, 0).splits.selection == "last_step"
    assert "keeps the last step" in D.report_html(state)
    with pytest.raises(Exception, match="Choose the file"):
        D.set_held_out(state, "A labelled validation file")
    D.set_held_out(state, "A labelled validation file", write_csv(tmp_path / "val.csv", 3))
    assert len(D.sample(state, 8, 0).validation) + state.splits.dropped_drawn == 6  # its drawn texts removed
    assert state.splits.selection == "validation" and state.splits.held_out_from == "given"


def test_validation_none_keeps_the_last_step(tmp_path):
    source = open_source(write_csv(tmp_path / "forty.csv", 20))
    assert split(source, 8, 0, "none").selection == "last_step"
    assert split(open_source(source.path, validation="none"), 8, 0).selection == "last_step"
    with pytest.raises(Exception, match="held_out"):
        split(source, 8, 0, "sometimes")


def test_generate_for_a_draw_then_distill_it_with_cod(tmp_path, tiny_classifier, tiny_student, cod_home, capsys):
    """`generate --k K --seed S` proposes for exactly the real half `distill --cod --k K --seed S` trains on."""
    from cod.cli import main
    from cod.counterfactuals.base import read_counterfactuals

    data = write_csv(tmp_path / "forty.csv", 20)
    cfs_file = tmp_path / "cfs.jsonl"
    assert (
        main(
            [
                "generate",
                "--data",
                str(data),
                "--k",
                "8",
                "--seed",
                "2",
                "--teacher",
                str(tiny_classifier),
                "--out",
                str(cfs_file),
                "--no-cache",
            ]
        )
        == 0
    )
    real = split(open_source(data), 8, 2).real_half
    assert [c.text for c in read_counterfactuals(cfs_file, ["negative", "positive"])] == [e.text for e in real]
    out = tmp_path / "run"
    assert (
        main(
            _cli(
                data,
                tiny_classifier,
                tiny_student,
                out,
                "--k",
                "8",
                "--seed",
                "2",
                "--cod",
                "--keep-unflipped",
                "--counterfactuals",
                str(cfs_file),
                "--epochs",
                "1",
            )
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["real_examples"] == 4 and metrics["counterfactuals_missing"] == 0
