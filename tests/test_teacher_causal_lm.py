"""Causal-LM teachers: label-word scoring (case and space variants summed once), label mass, calibration, batching
with left padding, the chat template, the persistent score cache, and the embedded demo LLM offline."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from cod.errors import ModelError
from cod.modeling.teachers import CausalLMTeacher, LLMTeacherOptions, Prompt, ScoreCache, teacher_kind
from tests.tiny import CHAT_TEMPLATE, make_tiny_causal_lm

TEXTS = ["a good film .", "the plot was boring and the acting was bad , not fun at all", "it is great", "dull"]


@pytest.fixture(scope="module")
def uniform_lm(tmp_path_factory):
    return make_tiny_causal_lm(tmp_path_factory.mktemp("uniform-lm"), uniform=True)


@pytest.fixture(scope="module")
def random_lm(tmp_path_factory):
    return make_tiny_causal_lm(tmp_path_factory.mktemp("random-lm"), chat_template=CHAT_TEMPLATE)


def _teacher(path, cache=False, **kw) -> CausalLMTeacher:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompt = kw.pop("prompt", None) or Prompt.build(["negative", "positive"])
    model = AutoModelForCausalLM.from_pretrained(path)
    return CausalLMTeacher(
        model, AutoTokenizer.from_pretrained(path), prompt, name="tiny", identity=str(path), cache=cache, **kw
    )


def test_case_and_space_variants_are_summed_once(uniform_lm):
    teacher = _teacher(uniform_lm)
    vocab = teacher.tokenizer.get_vocab()
    # negative: 'negative', 'Negative'; positive: 'positive', 'Positive', 'POSITIVE'. ' positive' is the same token
    # as 'positive' for this tokenizer, so it must not count twice.
    assert sorted(teacher.label_ids[0]) == sorted([vocab["negative"], vocab["Negative"]])
    assert sorted(teacher.label_ids[1]) == sorted([vocab["positive"], vocab["Positive"], vocab["POSITIVE"]])
    v = len(vocab)
    probs = teacher.predict_proba(TEXTS)  # the model is uniform over the vocabulary: 2 vs 3 tokens
    np.testing.assert_allclose(probs, np.tile([2 / 5, 3 / 5], (len(TEXTS), 1)), rtol=1e-5)
    np.testing.assert_allclose(teacher.label_mass(TEXTS), 5 / v, rtol=1e-4)
    np.testing.assert_allclose(np.exp(teacher.logits(TEXTS)), probs, rtol=1e-5)
    assert teacher.predict(TEXTS).tolist() == [1] * len(TEXTS)
    assert teacher.forward_passes == len(TEXTS)


def test_label_words_can_be_set(uniform_lm):
    prompt = Prompt.build(["negative", "positive"], {"negative": ["bad", "awful", "dull"]})
    teacher = _teacher(uniform_lm, prompt=prompt)
    np.testing.assert_allclose(teacher.predict_proba(TEXTS[:1]), [[3 / 6, 3 / 6]], rtol=1e-5)


def test_calibration_divides_by_content_free_scores(uniform_lm):
    teacher = _teacher(uniform_lm, calibrate=True)
    np.testing.assert_allclose(teacher.calibration(), [2 / 5, 3 / 5], rtol=1e-5)
    np.testing.assert_allclose(teacher.predict_proba(TEXTS), 0.5, rtol=1e-5)
    info = teacher.info()
    assert info["calibrated"] and info["content_free_probs"] == [0.4, 0.6]


def test_low_label_mass_warns_and_is_reported(uniform_lm, caplog):
    teacher = _teacher(uniform_lm)
    with caplog.at_level(logging.WARNING):
        teacher.predict_proba(TEXTS)
    assert "label mass" in caplog.text and "--label-words" in caplog.text
    info = teacher.info()
    assert info["low_label_mass"] and info["mean_label_mass"] == pytest.approx(5 / len(teacher.tokenizer), abs=1e-4)


def test_batches_with_left_padding_match_one_by_one(random_lm):
    batched = _teacher(random_lm, batch_size=4)
    single = _teacher(random_lm, batch_size=1)
    np.testing.assert_allclose(batched.predict_proba(TEXTS), single.predict_proba(TEXTS), atol=1e-5)
    np.testing.assert_allclose(batched.label_mass(TEXTS), single.label_mass(TEXTS), rtol=1e-4)
    assert batched.embed(TEXTS).shape == (len(TEXTS), 32)


def test_chat_template_is_used_when_present(random_lm, uniform_lm):
    chat = _teacher(random_lm)
    assert chat.chat and chat.inputs(["a good film ."])[0].startswith("<|user|> Classify")
    assert chat.inputs(["a good film ."])[0].endswith("<|assistant|> ")
    plain = _teacher(uniform_lm)
    assert not plain.chat and plain.inputs(["a good film ."])[0].endswith("\nAnswer:")
    with pytest.raises(ModelError, match="no chat template"):
        _teacher(uniform_lm, chat_template="on")


def test_labels_sharing_a_first_token_are_refused(uniform_lm):
    prompt = Prompt.build(["negative", "positive"], {"negative": ["good"], "positive": ["good", "great"]})
    with pytest.raises(ModelError, match="'negative' has no answer token of its own"):
        _teacher(uniform_lm, prompt=prompt)


def test_scores_persist_across_teachers_and_prompts(uniform_lm, tmp_path):
    cache = ScoreCache(tmp_path / "scores.sqlite")
    first = _teacher(uniform_lm, cache=cache)
    first.predict_proba(TEXTS)
    again = _teacher(uniform_lm, cache=ScoreCache(tmp_path / "scores.sqlite"))  # a new process would do the same
    np.testing.assert_allclose(again.predict_proba(TEXTS), first.predict_proba(TEXTS))
    assert again.forward_passes == 0 and again.cost["cache_hits"] == len(TEXTS)
    other_prompt = Prompt.build(["negative", "positive"], template="Review: {text}\nSentiment ({choices}):")
    changed = _teacher(uniform_lm, cache=cache, prompt=other_prompt)
    changed.predict_proba(TEXTS)
    assert changed.forward_passes == len(TEXTS)  # another prompt is another teacher
    assert cache.count() == 2 * len(TEXTS)


def test_a_scoring_run_killed_half_way_keeps_what_it_scored(uniform_lm, tmp_path, monkeypatch):
    import cod.modeling.teachers.base as base

    monkeypatch.setattr(base, "SAVE_EVERY", 2)
    teacher = _teacher(uniform_lm, cache=ScoreCache(tmp_path / "scores.sqlite"))
    real_score, calls = teacher._score, []

    def dies_on_the_second_chunk(texts):
        calls.append(texts)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the 15-minute limit, a Ctrl-C
        return real_score(texts)

    monkeypatch.setattr(teacher, "_score", dies_on_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        teacher.predict_proba(TEXTS)
    again = _teacher(uniform_lm, cache=ScoreCache(tmp_path / "scores.sqlite"))
    again.predict_proba(TEXTS)
    assert again.cost["cache_hits"] == 2 and again.forward_passes == len(TEXTS) - 2


def test_score_cache_is_bounded(tmp_path):
    cache = ScoreCache(tmp_path / "s.sqlite", max_rows=5)
    for i in range(4):
        cache.put_many("t", {f"text {i} {j}": {"raw": [j]} for j in range(3)})
    assert cache.count() == 5
    assert cache.get_many("t", ["text 3 2"]) == {"text 3 2": {"raw": [2]}}  # the newest stay


def test_kind_is_guessed_from_the_name_and_config(uniform_lm, tiny_classifier):
    assert teacher_kind("demo-llm") == "causal-lm"
    assert teacher_kind("api:gpt-4o-mini") == "api"
    assert teacher_kind(str(uniform_lm)) == "causal-lm"
    assert teacher_kind(str(tiny_classifier)) == "classifier"
    assert teacher_kind(str(tiny_classifier), "causal-lm") == "causal-lm"


def test_load_teacher_gives_a_causal_lm_teacher(uniform_lm, cod_home):
    from cod.modeling.loading import clear_teacher_cache, load_teacher

    options = LLMTeacherOptions.make({"positive": ["positive", "good"]}, calibrate=False)
    teacher = load_teacher(str(uniform_lm), device="cpu", label_names=["negative", "positive"], options=options)
    assert isinstance(teacher, CausalLMTeacher) and teacher.kind == "causal-lm"
    assert teacher.info()["prompt"]["label_words"] == {"negative": ["negative"], "positive": ["positive", "good"]}
    assert (
        load_teacher(str(uniform_lm), device="cpu", label_names=["negative", "positive"], options=options) is teacher
    )
    clear_teacher_cache()


@pytest.mark.slow
def test_demo_llm_scores_offline(cod_home):
    from cod.modeling.loading import clear_teacher_cache, load_teacher

    torch.set_num_threads(2)
    teacher = load_teacher("demo-llm", device="cpu", label_names=["negative", "positive"])
    texts = ["a gorgeous, witty, seductive movie.", "a dull, tedious mess."]
    probs = teacher.predict_proba(texts)
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1)
    assert probs[0, 1] > probs[1, 1]  # the embedded LLM ranks the two texts the right way round
    # Its validated prompt (completion, five words per label) gives the labels ~0.16 here: above the warning line.
    assert teacher.low_mass < teacher.info()["mean_label_mass"] <= 1.0
    clear_teacher_cache()
