"""API teachers through the real `openai` client against the OpenAI-compatible test server on loopback: logprobs,
labels outside the top alternatives, the vote fallback for a model that refuses logprobs, the persistent cache
(a re-run sends nothing), the budget, retries on 429, and the key kept out of logs, files and messages."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cod.errors import ModelError
from cod.modeling.teachers import APISettings, APITeacher, BudgetExceeded, Prompt
from tests.fake_openai import FakeOpenAI, Reply, fail, logprobs_reply, teacher_text

SECRET = "sk-test-never-log-this-0123456789"
PROMPT = Prompt.build(["negative", "positive"])
TEXTS = ["a good film", "a bad film", "an odd film"]


def _logprobs(body: dict) -> Reply:
    text = teacher_text(body)
    if "good" in text:
        return logprobs_reply({"positive": 0.6, " Positive": 0.1, "negative": 0.2, "The": 0.1})
    if "bad" in text:
        return logprobs_reply({"negative": 0.7, "Neg": 0.1, "positive": 0.1, "I": 0.1})
    return logprobs_reply({"positive": 0.5, "Sure": 0.3})  # negative is not among the alternatives


def _votes(body: dict) -> Reply:
    n = int(body.get("n") or 1)
    text = teacher_text(body)
    answers = ["Positive.", "positive", "negative", "I think so", "positive"] if "good" in text else ["negative"] * 5
    return Reply(choices=answers[:n])


def _teacher(server, cache_dir, **settings) -> APITeacher:
    from cod.modeling.teachers import ScoreCache

    settings = APISettings(base_url=server.base_url, retry_delay_s=0.01, **settings)
    return APITeacher("fake-model", PROMPT, settings, cache=ScoreCache(cache_dir / "scores.sqlite"))


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("COD_LLM_API_KEY", SECRET)
    monkeypatch.delenv("COD_LLM_BASE_URL", raising=False)


def test_logprobs_become_label_probabilities(tmp_path):
    with FakeOpenAI(_logprobs) as server:
        teacher = _teacher(server, tmp_path)
        probs = teacher.predict_proba(TEXTS)
        body = server.requests[0].body
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["max_tokens"] == 1
    np.testing.assert_allclose(probs[0], [0.2 / 0.9, 0.7 / 0.9], rtol=1e-5)  # 'positive' + ' Positive'
    np.testing.assert_allclose(probs[1], [0.8 / 0.9, 0.1 / 0.9], rtol=1e-5)  # 'Neg' counts as a start of 'negative'
    # 'negative' is outside the alternatives: it gets the remaining mass (0.2), which is reported.
    np.testing.assert_allclose(probs[2], [0.2 / 0.7, 0.5 / 0.7], rtol=1e-5)
    scores = teacher.scores(TEXTS)
    assert scores[2].shared == pytest.approx(0.2) and scores[2].extra["unseen"] == [True, False]
    np.testing.assert_allclose(teacher.label_mass(TEXTS), [0.9, 0.9, 0.5], rtol=1e-5)
    info = teacher.info()
    assert info["kind"] == "api" and info["mode"] == "logprobs" and info["cost"]["requests"] == 3
    assert info["cost"]["tokens"] == server.tokens > 0 and info["mean_latency_s"] is not None


def test_a_rerun_makes_no_request(tmp_path):
    with FakeOpenAI(_logprobs) as server:
        first = _teacher(server, tmp_path).predict_proba(TEXTS)
        sent = server.count
        again = _teacher(server, tmp_path)  # a new process: nothing in memory, the same cache file
        np.testing.assert_allclose(again.predict_proba(TEXTS), first)
        assert server.count == sent == 3 and again.cost["requests"] == 0 and again.cost["cache_hits"] == 3


def test_budget_stops_a_run_before_it_starts(tmp_path):
    with FakeOpenAI(_logprobs) as server:
        teacher = _teacher(server, tmp_path, max_requests=2)
        assert teacher.estimate(TEXTS) == {
            "texts": 3,
            "cached": 0,
            "requests": 3,
            "tokens": teacher.estimate(TEXTS)["tokens"],
        }
        expected = r"needs, for 3 new text\(s\), 3 request.*budget has 2 request\(s\).*--teacher-max-requests"
        with pytest.raises(BudgetExceeded, match=expected):
            teacher.predict_proba(TEXTS)
        assert server.count == 0
        teacher.predict_proba(TEXTS[:2])  # within the budget
        with pytest.raises(BudgetExceeded, match="0 request"):
            teacher.predict_proba(TEXTS[2:])
        assert server.count == 2


def test_token_budget(tmp_path):
    with FakeOpenAI(_logprobs) as server:
        teacher = _teacher(server, tmp_path, max_tokens=10)
        with pytest.raises(BudgetExceeded, match="tokens"):
            teacher.predict_proba(TEXTS)
        assert server.count == 0


def test_a_model_refusing_logprobs_falls_back_to_votes(tmp_path, caplog):
    with FakeOpenAI(_votes, refuse_logprobs=True) as server:
        teacher = _teacher(server, tmp_path, samples=5)
        with caplog.at_level(logging.WARNING):
            probs = teacher.predict_proba(TEXTS[:2])
        assert "votes" in caplog.text
        info = teacher.info()
        assert info["mode"] == "votes" and "not supported" in info["refusal"] and info["samples"] == 5
        np.testing.assert_allclose(probs[0], [1 / 4, 3 / 4])  # 3 positive, 1 negative, 1 answer naming no label
        np.testing.assert_allclose(teacher.label_mass(TEXTS[:1]), [0.8])
        np.testing.assert_allclose(probs[1], [1.0 - 1e-9, 0.0], atol=1e-6)
        assert any(r.body.get("n") == 5 and not r.body.get("logprobs") for r in server.requests)
        sent = server.count
        again = _teacher(server, tmp_path, samples=5)  # the refusal and the votes are remembered
        np.testing.assert_allclose(again.predict_proba(TEXTS[:2]), probs)
        assert server.count == sent and again.info()["mode"] == "votes"


def test_votes_top_up_when_the_server_ignores_n(tmp_path):
    with FakeOpenAI(_votes, honour_n=False) as server:
        teacher = _teacher(server, tmp_path, mode="votes", samples=3)
        probs = teacher.predict_proba(["a good film"])
        assert server.count == 3  # one answer per request
    np.testing.assert_allclose(probs, [[0.0, 1.0]])  # 'Positive.' x3 (the first answer, played each time)


def test_logprobs_mode_refused_is_an_error(tmp_path):
    with FakeOpenAI(_votes, refuse_logprobs=True) as server:
        teacher = _teacher(server, tmp_path, mode="logprobs")
        with pytest.raises(ModelError, match="refuses logprobs"):
            teacher.predict_proba(TEXTS[:1])


def test_429_is_retried_after_the_asked_delay(tmp_path):
    state = {"n": 0}

    def script(body):
        state["n"] += 1
        return fail(429, "slow down", headers={"Retry-After": "0.05"}) if state["n"] == 1 else _logprobs(body)

    with FakeOpenAI(script) as server:
        teacher = _teacher(server, tmp_path, concurrency=1)
        teacher.predict_proba(TEXTS[:1])
        assert server.count == 2 and server.requests[1].time - server.requests[0].time >= 0.05


def test_concurrency_is_bounded(tmp_path):
    def slow(body):
        reply = _logprobs(body)
        reply.delay_s = 0.1
        return reply

    with FakeOpenAI(slow) as server:
        _teacher(server, tmp_path, concurrency=2).predict_proba([f"film {i}" for i in range(6)])
        assert server.max_in_flight == 2


def test_the_key_never_reaches_logs_files_or_messages(tmp_path, caplog, monkeypatch):
    def leaky(body):
        return fail(401, f"Incorrect API key provided: {SECRET}")

    with caplog.at_level(logging.DEBUG):
        with FakeOpenAI(_logprobs) as server:
            monkeypatch.setenv("COD_LLM_BASE_URL", server.base_url)  # the owner's endpoint: the owner's key goes there
            teacher = _teacher(server, tmp_path)
            teacher.predict_proba(TEXTS)
            assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # sent, as it must be
            info = repr(teacher.info()) + repr(teacher)
        with FakeOpenAI(leaky) as server:
            monkeypatch.setenv("COD_LLM_BASE_URL", server.base_url)
            with pytest.raises(ModelError) as err:
                _teacher(server, tmp_path / "other").predict_proba(TEXTS[:1])
    assert SECRET not in str(err.value) and "***" in str(err.value)
    assert SECRET not in caplog.text and SECRET not in info
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_public_mode_refuses_a_private_endpoint_before_connecting(tmp_path, monkeypatch):
    import cod.net
    from cod.net import URLRefused

    looked_up = []
    monkeypatch.setenv("COD_PUBLIC", "1")
    monkeypatch.setattr(cod.net, "resolve", lambda host, port: looked_up.append(host) or ["169.254.169.254"])
    settings = APISettings(base_url="http://metadata.example/v1")
    with pytest.raises(URLRefused):
        APITeacher("fake-model", PROMPT, settings, cache=False)
    assert looked_up == ["metadata.example"]  # resolved (stubbed), never connected


def test_public_mode_loads_only_allowed_causal_lms(monkeypatch, tmp_path):
    from cod.modeling.loading import load_teacher

    monkeypatch.setenv("COD_PUBLIC", "1")
    with pytest.raises(ModelError, match="only these models"):
        load_teacher(str(tmp_path), kind="causal-lm")
