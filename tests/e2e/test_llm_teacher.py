"""The Models tab with an API teacher in headless Chromium, against the loopback OpenAI-compatible server: the tab
shows the kind, the label mass, the calibration and what was spent, and the live teacher waits for typing to pause
(a typed sentence costs a couple of requests, not one per keystroke) and shows its latency."""

from __future__ import annotations

import re

import pytest

from components import models as M
from tests.e2e.app_server import running_app, tiny_services
from tests.fake_openai import FakeOpenAI, logprobs_reply, teacher_text

pytestmark = pytest.mark.e2e
TIMEOUT = 60_000  # ms
SENTENCE = "a great , brilliant film"


def _sentiment(body):
    good = any(w in teacher_text(body) for w in ("great", "brilliant"))
    probs = {"positive": 0.8, "negative": 0.1, "Sure": 0.1} if good else {"negative": 0.7, "positive": 0.2}
    return logprobs_reply(probs)


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI(_sentiment) as fake:
        yield fake


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tiny_services(tmp_path_factory.mktemp("e2e-llm"))) as url:
        yield url


def _expect(page, selector: str, pattern: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_contain_text(re.compile(pattern), timeout=TIMEOUT)


def test_models_tab_api_teacher_spend_latency_and_debounce(browser, app, server, shot, monkeypatch):
    monkeypatch.setenv("COD_LLM_API_KEY", "sk-e2e-secret")  # the app runs in this process: it reads this key
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(app)
    _expect(page, "#report", r"Few-shot set")
    page.get_by_role("tab", name="2 · Models").click()
    page.locator("#teacher-name").locator("textarea, input").first.fill("api:fake")
    page.get_by_text("LLM teacher settings").click()
    page.locator("#calibrate input").check()
    page.locator("#teacher-base-url").locator("textarea, input").first.fill(server.base_url)
    page.locator("#load-teacher").click()
    _expect(page, "#teacher-info", r"Kind api")
    _expect(page, "#teacher-info", r"Label mass \d+(\.\d)?%")
    _expect(page, "#teacher-info", r"Calibration on \(content-free: ")
    _expect(page, "#teacher-info", r"Spent \d+ requests, [\d,]+ tokens")
    assert "sk-e2e-secret" not in page.content()

    before = server.count
    probe = page.locator("#probe textarea")
    probe.fill("")
    probe.type(SENTENCE, delay=20)  # 24 keystrokes in about half a second, faster than the debounce
    _expect(page, "#probe-probs", r"answered in \d+\.\d\d s")
    page.wait_for_function("document.querySelector('#probe-probs .cod-probs')?.dataset.top === 'positive'")
    page.wait_for_timeout(int(3000 * M.API_DEBOUNCE_S))  # any request still owed would be sent by now
    live_requests = server.count - before
    assert 1 <= live_requests <= 3 < len(SENTENCE), live_requests
    _expect(page, "#probe-probs", r"requests, [\d,]+ tokens so far")
    shot(page, "2-models-api-teacher")
    context.close()
