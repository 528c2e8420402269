"""`python -m cod distill` end to end on tiny models and a small CSV file (in-process, seconds)."""

from __future__ import annotations

import json

import pytest

from cod.cli import main
from tests.test_distill import _counterfactuals, _teacher, _texts


@pytest.fixture
def csv_file(tmp_path):
    rows = ["text,label"] + [f'"{e.text}",{["negative", "positive"][e.label]}' for e in _texts(40, 3)]
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _args(csv_file, tiny_classifier, tiny_student, out, *extra):
    return ["distill", "--data", str(csv_file), "--teacher", str(tiny_classifier), "--student", str(tiny_student),
            "--k", "8", "--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--max-length", "32", "--evaluations", "2",
            "--out", str(out), "--quiet", *extra]  # fmt: skip


def test_cli_kd_run_prints_metrics_and_writes_folder(csv_file, tiny_classifier, tiny_student, tmp_path, capsys, cod_home):
    out = tmp_path / "run"
    assert main(_args(csv_file, tiny_classifier, tiny_student, out, "--method", "kd", "--test", str(csv_file))) == 0
    printed = capsys.readouterr().out
    assert "kd k=8 seed=0" in printed and "student test accuracy" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_examples"] == 8 and metrics["student_test_accuracy"] is not None
    config = json.loads((out / "config.json").read_text())
    assert config["data"] == str(csv_file) and config["distill"]["k"] == 8


def test_cli_cod_with_counterfactual_file(csv_file, tiny_classifier, tiny_student, tmp_path, capsys, cod_home):
    import numpy as np

    from cod.data.readers import load, sample_few_shot

    data = load(csv_file)
    # The same draw the command makes: the seeded hold-out, then the class-balanced sample.
    order = np.random.default_rng([0, 7]).permutation(len(data.examples))
    pool = [data.examples[i] for i in order[len(data.examples) // 5 :]]
    draw = sample_few_shot(pool, 8, seed=0, label_names=data.label_names)
    cfs = _counterfactuals(_teacher(tiny_classifier), draw[:4])
    cf_file = tmp_path / "cfes.jsonl"
    cf_file.write_text("".join(json.dumps(c.to_record(data.label_names)) + "\n" for c in cfs))
    out = tmp_path / "cod"
    assert main(_args(csv_file, tiny_classifier, tiny_student, out, "--cod", "--counterfactuals", str(cf_file))) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "kd+cod" and metrics["counterfactuals_used"] == 4 and metrics["real_examples"] == 4


def test_cli_cod_without_file_uses_the_lexical_proposer(csv_file, tiny_classifier, tiny_student, tmp_path, cod_home):
    out = tmp_path / "lex"
    code = main(_args(csv_file, tiny_classifier, tiny_student, out, "--cod", "--keep-unflipped"))
    assert code == 0
    assert (out / "counterfactuals.jsonl").exists()
    assert any((cod_home / "cache" / "lexical").rglob("*.json"))  # proposals are cached for the next run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["real_examples"] == 4


def test_cli_bad_setting_is_one_clear_line(csv_file, tiny_classifier, tiny_student, tmp_path, capsys):
    code = main(_args(csv_file, tiny_classifier, tiny_student, tmp_path / "x", "--cod", "--k", "7"))
    assert code == 2 and "k must be even" in capsys.readouterr().err


def test_cli_push_to_hub_offline_is_a_clear_error(csv_file, tiny_classifier, tiny_student, tmp_path, capsys, cod_home,
                                                  monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(_args(csv_file, tiny_classifier, tiny_student, tmp_path / "p", "--epochs", "1",
                      "--push-to-hub", "someone/tiny-student"))
    assert code == 2 and "Could not push" in capsys.readouterr().err
    assert (tmp_path / "p" / "model" / "config.json").exists()  # the run itself is kept

