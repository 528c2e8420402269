"""The LLM teacher names on the command line: `predict --teacher api:MODEL` through the real client against the
loopback server, a causal LM by path with `--teacher-kind causal-lm`, and `distill` from a causal-LM teacher."""

from __future__ import annotations

import json

import pytest

from cod.cli import main
from tests.fake_openai import FakeOpenAI, logprobs_reply
from tests.test_distill_cli import csv_file  # noqa: F401  (fixture)
from tests.tiny import make_tiny_causal_lm


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return make_tiny_causal_lm(tmp_path_factory.mktemp("cli-lm"))


def test_predict_with_an_api_teacher_prints_the_classifier_json(cod_home, capsys, monkeypatch):
    monkeypatch.setenv("COD_LLM_API_KEY", "sk-cli-secret")
    with FakeOpenAI(lambda body: logprobs_reply({"positive": 0.75, "negative": 0.25})) as server:
        code = main(
            [
                "predict",
                "--teacher",
                "api:fake",
                "--llm-base-url",
                server.base_url,
                "--labels",
                "negative,positive",
                "--json",
                "a fine film",
                "a bad film",
            ]
        )
        assert code == 0 and server.count == 2
        out, err = capsys.readouterr()
        rows = json.loads(out)
        assert [r["text"] for r in rows] == ["a fine film", "a bad film"]
        assert rows[0]["probs"] == {"negative": 0.25, "positive": 0.75}
        assert "about 2 request(s)" in err and "sk-cli-secret" not in out + err
        assert (
            main(["predict", "--teacher", "api:fake", "--llm-base-url", server.base_url, "--json", "a fine film"]) == 0
        )
        assert server.count == 2  # cached on disk: no second request


def test_predict_budget_refuses_before_any_request(cod_home, capsys, monkeypatch):
    from cod.modeling.loading import clear_teacher_cache

    clear_teacher_cache()
    with FakeOpenAI(lambda body: logprobs_reply({"positive": 0.75, "negative": 0.25})) as server:
        code = main(
            [
                "predict",
                "--teacher",
                "api:fake",
                "--llm-base-url",
                server.base_url,
                "--teacher-max-requests",
                "1",
                "--json",
                "one",
                "two",
            ]
        )
        assert code != 0 and server.count == 0
    assert "--teacher-max-requests" in capsys.readouterr().err


def test_predict_with_a_causal_lm_by_path(tiny_lm, cod_home, capsys):
    code = main(
        [
            "predict",
            "--teacher",
            str(tiny_lm),
            "--teacher-kind",
            "causal-lm",
            "--labels",
            "bad,good",
            "--label-words",
            "good=good,great",
            "--calibrate",
            "--json",
            "a good film",
            "a bad film",
        ]
    )
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert list(rows[0]["probs"]) == ["bad", "good"] and abs(sum(rows[1]["probs"].values()) - 1) < 1e-5


def test_distill_from_a_causal_lm_teacher_records_its_info(csv_file, tiny_lm, tiny_student, tmp_path, cod_home):  # noqa: F811
    out = tmp_path / "run"
    code = main(
        [
            "distill",
            "--data",
            str(csv_file),
            "--teacher",
            str(tiny_lm),
            "--student",
            str(tiny_student),
            "--k",
            "8",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--max-length",
            "32",
            "--evaluations",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    info = config["teacher_info"]
    assert info["kind"] == "causal-lm" and info["labels"] == ["negative", "positive"] and info["mean_label_mass"] > 0
    assert json.loads((out / "metrics.json").read_text())["teacher_train_forward_passes"] == 8


def test_chat_template_flag_reaches_the_causal_lm_teacher(tmp_path, cod_home):
    from cod.cli import build_parser
    from cod.cli._teacher import load_teacher_from_args
    from tests.tiny import CHAT_TEMPLATE

    path = make_tiny_causal_lm(tmp_path / "chat-lm", chat_template=CHAT_TEMPLATE)
    argv = ["predict", "--teacher", str(path), "--teacher-kind", "causal-lm", "a film"]
    chat = load_teacher_from_args(build_parser().parse_args(argv), ["negative", "positive"], device="cpu")
    plain = load_teacher_from_args(
        build_parser().parse_args([*argv[:-1], "--chat-template", "off", "a film"]), ["negative", "positive"]
    )
    assert chat.chat and not plain.chat and chat.cache_key != plain.cache_key
    assert plain.inputs(["a film"])[0].endswith("\nAnswer:")
