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
    return [
        "distill",
        "--data",
        str(csv_file),
        "--teacher",
        str(tiny_classifier),
        "--student",
        str(tiny_student),
        "--k",
        "8",
        "--epochs",
        "2",
        "--batch-size",
        "4",
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


def test_cli_kd_run_prints_metrics_and_writes_folder(
    csv_file, tiny_classifier, tiny_student, tmp_path, capsys, cod_home
):
    out = tmp_path / "run"
    assert main(_args(csv_file, tiny_classifier, tiny_student, out, "--method", "kd", "--test", str(csv_file))) == 0
    printed = capsys.readouterr().out
    assert "kd k=8 seed=0" in printed and "student test accuracy" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_examples"] == 8 and metrics["student_test_accuracy"] is not None
    config = json.loads((out / "config.json").read_text())
    assert config["data"] == str(csv_file) and config["distill"]["k"] == 8


def test_cli_cod_with_counterfactual_file(csv_file, tiny_classifier, tiny_student, tmp_path, capsys, cod_home):
    from cod.data.readers import load
    from cod.data.splits import sample_few_shot

    data = load(csv_file)
    # The same draw the command makes: the class-balanced sample of every row (held-out data is what is left).
    draw = sample_few_shot(data.examples, 8, seed=0, label_names=data.label_names)
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


def test_cli_push_to_hub_offline_is_a_clear_error(
    csv_file, tiny_classifier, tiny_student, tmp_path, capsys, cod_home, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(
        _args(
            csv_file,
            tiny_classifier,
            tiny_student,
            tmp_path / "p",
            "--epochs",
            "1",
            "--push-to-hub",
            "someone/tiny-student",
        )
    )
    assert code == 2 and "Could not push" in capsys.readouterr().err
    assert (tmp_path / "p" / "model" / "config.json").exists()  # the run itself is kept


def _parse(*argv):
    from cod.cli import build_parser

    return build_parser().parse_args(list(argv))


def test_a_percent_sign_in_a_settings_help_prints_as_written(capsys):
    import argparse
    import dataclasses

    from cod.cli._common import add_config_flags

    @dataclasses.dataclass(frozen=True)
    class Settings:
        share: float = dataclasses.field(default=0.5, metadata={"help": "95% interval"})

    parser = argparse.ArgumentParser(prog="x")
    add_config_flags(parser, Settings)
    with pytest.raises(SystemExit):  # argparse %-formats help: an undoubled % made --help raise a TypeError
        parser.parse_args(["--help"])
    assert "95% interval [0.5]" in capsys.readouterr().out


def test_every_distill_setting_has_help_and_a_generated_flag(capsys):
    import dataclasses

    from cod.cli import distill as cli_distill
    from cod.config import DistillConfig

    fields = dataclasses.fields(DistillConfig)
    assert all(f.metadata.get("help") for f in fields), [f.name for f in fields if not f.metadata.get("help")]
    with pytest.raises(SystemExit):
        _parse("distill", "--help")
    text = capsys.readouterr().out
    for f in fields:
        assert f"--{f.name.replace('_', '-')}" in text and f.metadata["help"].split()[0] in text
    # Generated flags, aliases of older names, --no- booleans, then --set on top; defaults stay the config's own.
    args = _parse(
        "distill",
        "--data",
        "d.csv",
        "--out",
        "o",
        "--lr",
        "1e-3",
        "--cod",
        "--no-resume",
        "--early-stopping",
        "3",
        "--warmup-ratio",
        "0.2",
        "--set",
        "warmup_ratio=0.3",
        "--set",
        "lora_r=4",
    )
    config = cli_distill.build_config(args)
    assert (config.learning_rate, config.cod, config.resume, config.patience) == (1e-3, True, False, 3)
    assert (config.warmup_ratio, config.lora_r, config.epochs) == (0.3, 4, DistillConfig.epochs)
    with pytest.raises(SystemExit):  # choices come from the field's metadata
        _parse("distill", "--data", "d.csv", "--out", "o", "--method", "xx")
    assert "invalid choice: 'xx'" in capsys.readouterr().err


def test_sweep_flags_are_generated_from_both_configs():
    from cod.cli import sweep as cli_sweep
    from cod.config import DistillConfig

    args = _parse(
        "sweep",
        "--out",
        "s",
        "--k",
        "4,8",
        "--methods",
        "kd, kd+cod",
        "--no-figures",
        "--alpha",
        "5",
        "--patience",
        "2",
        "--set",
        "keep_unflipped=true",
    )
    config = cli_sweep.build_config(args)
    assert config.ks == (4, 8) and config.methods == ("kd", "kd+cod") and config.figures is False
    assert config.distill == {"alpha": 5.0, "patience": 2, "keep_unflipped": True}
    assert config.distill_config("kd", 4, 0).alpha == 5.0 and DistillConfig().alpha == 20.0
    with pytest.raises(SystemExit):  # the grid's own settings are not distill flags of a sweep
        _parse("sweep", "--out", "s", "--cod")


def test_a_stored_config_with_the_old_early_stopping_name_still_loads():
    from cod.config import DistillConfig

    assert DistillConfig.from_dict({"early_stopping": 4}).patience == 4
