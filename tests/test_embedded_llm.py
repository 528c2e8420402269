"""The embedded LLMs' registry: a GGUF file shipped whole or in pieces (joined in order, size checked), a missing
package named with its install command, and every embedded name read as a causal-LM teacher."""

from __future__ import annotations

import sys

import pytest

from cod.errors import ModelError
from cod.modeling.demo import llm as embedded
from cod.modeling.teachers import teacher_kind


@pytest.fixture
def pieces(tmp_path, monkeypatch):
    """Three importable packages holding the pieces b'GGUF', b'-abc', b'-de' of one file."""
    for i, data in enumerate((b"GGUF", b"-abc", b"-de"), start=1):
        folder = tmp_path / "site" / f"cod_test_piece{i}"
        (folder / "data").mkdir(parents=True)
        (folder / "__init__.py").write_text("")
        (folder / "data" / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    parts = tuple((f"cod_test_piece{i}", f"data/part{i:02d}.bin") for i in (1, 2, 3))
    return embedded.EmbeddedLLM("test-llm", "joined.gguf", parts, "pip install the-pieces", size=11)


def _register(monkeypatch, spec):
    monkeypatch.setitem(embedded.EMBEDDED_LLMS, spec.name, spec)


def test_pieces_are_joined_in_order_once(pieces, monkeypatch, cod_home, tmp_path):
    monkeypatch.setattr(embedded, "models_dir", lambda: tmp_path / "models")
    (tmp_path / "models").mkdir()
    _register(monkeypatch, pieces)
    path = embedded.demo_llm_gguf("test-llm")
    assert path == tmp_path / "models" / "joined.gguf" and path.read_bytes() == b"GGUF-abc-de"
    stamp = path.stat().st_mtime_ns
    assert embedded.demo_llm_gguf("test-llm").stat().st_mtime_ns == stamp  # joined once
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_pieces_of_the_wrong_size_are_refused_with_the_fix(pieces, monkeypatch, tmp_path):
    monkeypatch.setattr(embedded, "models_dir", lambda: tmp_path / "models")
    (tmp_path / "models").mkdir()
    _register(monkeypatch, embedded.EmbeddedLLM("test-llm", "joined.gguf", pieces.parts, "pip install x", size=12))
    with pytest.raises(ModelError, match=r"join to 11 bytes, not 12: reinstall them \(`pip install x`\)"):
        embedded.demo_llm_gguf("test-llm")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_missing_piece_names_the_package_and_the_install_command(pieces, monkeypatch):
    parts = pieces.parts + (("cod_test_piece_absent", "data/part04.bin"),)
    _register(monkeypatch, embedded.EmbeddedLLM("test-llm", "joined.gguf", parts, "pip install the-pieces"))
    with pytest.raises(ModelError, match=r"cod_test_piece_absent is missing\): run `pip install the-pieces`"):
        embedded.demo_llm_gguf("test-llm")
    assert "cod_test_piece_absent" not in sys.modules


def test_every_embedded_name_is_a_causal_lm_and_unknown_names_are_refused():
    assert all(teacher_kind(name) == "causal-lm" for name in embedded.EMBEDDED_LLMS)
    assert embedded.is_embedded_llm(" demo-llm-qwen ") and not embedded.is_embedded_llm("demo")
    with pytest.raises(ModelError, match="not an embedded LLM"):
        embedded.demo_llm_path("demo-llm-huge")


COMPLETION = "Movie review: {text}\nSentiment (positive or negative):"


@pytest.mark.parametrize("name, calibrated", [("demo-llm", True), ("demo-llm-qwen", True)])
def test_the_validated_prompt_is_each_embedded_llms_default(name, calibrated):
    from cod.modeling.teachers import LLMTeacherOptions

    options = LLMTeacherOptions().for_model(name, ["Negative", "Positive"])
    assert (options.template, options.chat_template, options.calibrate) == (COMPLETION, "off", calibrated)
    assert dict(options.label_words)["Positive"] == ("positive", "good", "great", "excellent", "fine")
    # What the user sets wins; the rest still comes from the validated choice.
    mine = LLMTeacherOptions.make({"negative": ["bad"]}, template="Review: {text}\nVerdict:", calibrate=False)
    mine = mine.for_model(name, ["negative", "positive"])
    assert (mine.template, mine.chat_template, mine.calibrate) == ("Review: {text}\nVerdict:", "auto", False)
    assert mine.label_words == (("negative", ("bad",)),)
    # Other labels, or another model: nothing validated, calibration off unless asked.
    for other in (LLMTeacherOptions().for_model(name, ["sports", "politics"]), LLMTeacherOptions().for_model("x", [])):
        assert (other.template, other.label_words, other.calibrate, other.chat_template) == (None, (), False, "auto")


@pytest.mark.slow
def test_load_teacher_and_the_cli_read_the_validated_prompt_of_demo_llm(cod_home, capsys):
    import json

    from cod.cli import main
    from cod.modeling.loading import clear_teacher_cache, load_teacher

    teacher = load_teacher("demo-llm", device="cpu", label_names=["negative", "positive"])
    info = teacher.info()
    assert info["prompt"]["template"] == COMPLETION and info["calibrated"] and not info["chat_template"]
    text = "a dull, tedious mess."
    calibrated = teacher.predict_proba([text])[0]
    teacher.calibrate = False
    raw = teacher.predict_proba([text])[0]
    assert abs(calibrated[1] - raw[1]) > 0.01  # calibration moves this answer, so the CLI's choice shows
    for flags, expected in (([], calibrated), (["--no-calibrate"], raw)):
        assert main(["predict", "--teacher", "demo-llm", *flags, "--json", text]) == 0
        printed = json.loads(capsys.readouterr().out)[0]["probs"]
        assert [printed["negative"], printed["positive"]] == pytest.approx(list(expected), abs=1e-5)
    clear_teacher_cache()
