"""The Models tab with LLM teachers: a causal LM by path and a chat model behind the loopback OpenAI-compatible
server; the tab shows the kind, label mass, calibration and API spend, and every tab then gets the same teacher."""

from __future__ import annotations

import pytest

from components import models as M
from components.services import Services
from components.state import PageState
from tests.fake_openai import FakeOpenAI, logprobs_reply, teacher_text
from tests.test_app_handlers import EXAMPLE, models  # noqa: F401  (fixture)
from tests.tiny import make_tiny_causal_lm


@pytest.fixture
def services(models, tmp_path, cod_home):  # noqa: F811
    return Services(teacher=models[0], student=models[1], store_path=tmp_path / "cod.db", artifacts=tmp_path / "art")


@pytest.fixture
def state(services):
    from components import data as D

    state = PageState(teacher=services.default_teacher, student=services.default_student)
    D.load_upload(state, EXAMPLE)
    return D.sample(state, 8, 0)


def _sentiment(body):
    text = teacher_text(body)
    good = any(w in text for w in ("great", "good", "brilliant", "fun", "lovely", "best"))
    return logprobs_reply(
        {"positive": 0.8, "negative": 0.1, "Sure": 0.1} if good else {"negative": 0.7, "positive": 0.2}
    )


def test_models_tab_with_an_api_teacher(services, state, monkeypatch):
    monkeypatch.setenv("COD_LLM_API_KEY", "sk-app-secret")
    monkeypatch.setattr(M, "API_DEBOUNCE_S", 0.0)
    with FakeOpenAI(_sentiment) as server:
        state, html, mapping = M.check_teacher(services, state, "api:fake", "auto", False, "", server.base_url)
        assert "Kind <b>api</b>" in html and "Validation accuracy" in html and "Label mass" in html
        assert "Scored by <b>logprobs</b>" in html and f"<b>{server.count}</b> requests" in html
        assert list(mapping["match"]) == ["✓", "✓"] and "sk-app-secret" not in html
        sent = server.count
        live = M.predict_html(services, "api:fake", "a great , brilliant film")  # the same teacher, by name alone
        assert 'data-top="positive"' in live and "answered in" in live and server.count == sent + 1
        assert services.teacher(state.teacher).kind == "api"


def test_models_tab_marks_votes_when_logprobs_are_refused(services, state, monkeypatch):
    monkeypatch.setattr(M, "API_DEBOUNCE_S", 0.0)

    def votes(body):
        from tests.fake_openai import Reply

        return Reply(choices=["positive"] * int(body.get("n") or 1))

    with FakeOpenAI(votes, refuse_logprobs=True) as server:
        state, html, _ = M.check_teacher(services, state, "api:fake-reasoner", "auto", False, "", server.base_url)
        assert "votes (5 sampled answers per text; the model refused logprobs)" in html
        assert "votes" in M.predict_html(services, "api:fake-reasoner", "a dull film")


def test_models_tab_with_a_causal_lm(services, state, tmp_path):
    path = make_tiny_causal_lm(tmp_path / "lm", uniform=True)
    state, html, _ = M.check_teacher(services, state, str(path), "causal-lm", True, "positive=positive,good", "")
    assert "Kind <b>causal-lm</b>" in html and "Calibration <b>on (content-free: " in html
    assert "positive: positive, good" in html and "low: mostly other words" in html
    assert 'data-top="' in M.predict_html(services, str(path), "a good film")
