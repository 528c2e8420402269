"""The user's journey in headless Chromium, one test per tab (tiny models, tiny settings).

Upload a CSV, generate counterfactuals offline, edit one and watch the teacher's probabilities change, accept it,
run a tiny distillation and watch the chart move, stop a run, see a figure on Compare, export. Each test stands
alone, so any one of them runs by itself: it opens its own page and makes its own project (through the UI, or
through the library and then opened by name). One app server serves the module. Each tab's final look is saved
under test-output/screenshots/. Waits are for patterns, never for exact intermediate values.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.app_server import EXAMPLE, curated_project, running_app, tiny_services

pytestmark = pytest.mark.e2e
TIMEOUT = 60_000  # ms, for waits that include model work on 2 shared cores


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(services, url) of one app server for the module; every test opens its own page and project on it."""
    services = tiny_services(tmp_path_factory.mktemp("e2e"))
    with running_app(services) as url:
        yield services, url


@pytest.fixture
def page(browser, app):
    """A fresh page (its own browser context, so its own session) on the app."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    p = context.new_page()
    p.set_default_timeout(TIMEOUT)
    p.goto(app[1])
    p.wait_for_selector("#report")
    # The first load draws the default task; a file set before it ends can be dropped by the page, as a person's
    # upload a second after opening it cannot be. Start each journey from the loaded page.
    expect_text(p, "#report", r"Few-shot set")
    yield p
    context.close()


def open_saved(page, name: str) -> None:
    """Open a stored project by name from the Data tab."""
    page.locator("#saved-projects input").click()
    page.get_by_role("option", name=re.compile(re.escape(name))).click()
    page.locator("#open-project").click()
    expect_text(page, "#report", "example_reviews")
    page.wait_for_function("document.querySelector('#fewshot [role=grid]')?.getAttribute('aria-rowcount') === '9'")


def upload_and_draw(page) -> None:
    """Upload the example CSV and draw k=8."""
    page.set_input_files("#upload input[type=file]", str(EXAMPLE))
    expect_text(page, "#report", r"Read 40 rows from example_reviews\.csv")
    page.locator("#k input").fill("8")
    page.locator("#draw").click()
    page.wait_for_function("document.querySelector('#fewshot [role=grid]')?.getAttribute('aria-rowcount') === '9'")


def distill_tiny(page) -> None:
    """Run a three-epoch distillation from the Distill tab and wait for it to finish."""
    tab(page, "4 · Distill")
    page.locator("#epochs input").fill("3")
    page.locator("#batch input").fill("4")
    page.locator("#lr input").fill("0.001")
    page.locator("#start-distill").click()
    expect_text(page, "#distill-progress", r"Finished at step \d+ of \d+")


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def expect_text(page, selector: str, pattern: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_contain_text(re.compile(pattern), timeout=TIMEOUT)


def test_1_data_upload_a_csv_and_draw(page, shot):
    upload_and_draw(page)
    expect_text(page, "#fewshot", "CoD real half")  # header + 8 rows, the first half marked
    expect_text(page, "#report", r"Validation: 32 rows of the 40 were not drawn")  # the default hold-out, counted
    page.get_by_text("Held-out data (chooses the checkpoint)").click()
    page.get_by_label("None: fixed schedule, last step").check()
    expect_text(page, "#report", "keeps the last step")
    shot(page, "1-data")


def live_requests(page) -> list[str]:
    """The URLs of the page's requests to the live previews' light route (components/live_route.py), as they come."""
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url) if "/cod/live/" in r.url else None)
    return urls


def test_2_models_live_teacher(page, shot):
    tab(page, "2 · Models")
    routed = live_requests(page)
    probe = page.locator("#probe textarea")
    probe.fill("")
    probe.type("a dull , terrible film", delay=10)
    expect_text(page, "#probe-probs", "negative")
    assert page.locator("#probe-probs .cod-probs").get_attribute("data-top") == "negative"
    assert routed and all(u.endswith("/cod/live/predict") for u in routed)  # typing went through the light route
    page.locator("#load-teacher").click()
    expect_text(page, "#teacher-info", r"Validation accuracy")
    shot(page, "2-models")


def test_3_counterfactuals_generate_edit_accept(page, shot):
    upload_and_draw(page)
    tab(page, "3 · Counterfactuals")
    page.locator("#generate").click()
    expect_text(page, "#generate-progress", r"Done: 4 of 4")
    expect_text(page, "#cf-stats", r"examples")
    page.locator("#review-table [data-testid='cell-0-2']").click()
    expect_text(page, "#original-card", r"Original 1 of 4")
    live = page.locator("#cf-live .cod-probs")
    before = live.get_attribute("data-top")
    box = page.locator("#cf-text textarea")
    routed = live_requests(page)
    # Typing a strongly negative or positive word turns the teacher the other way, live.
    word = " terrible awful bad" if before == "positive" else " brilliant great good"
    box.press("End")
    box.type(word, delay=20)
    after = "negative" if before == "positive" else "positive"
    page.wait_for_function(
        f"document.querySelector('#cf-live .cod-probs')?.dataset.top === '{after}'", timeout=TIMEOUT
    )
    assert routed and all(u.endswith("/cod/live/counterfactual") for u in routed)
    page.locator("#accept").click()
    expect_text(page, "#cf-stats", r"1</b>|1\s*edited")
    expect_text(page, "#review-table", "edited")
    page.locator("#bulk-accept").click()
    expect_text(page, "#cf-stats", r"0\s*to review")
    shot(page, "3-counterfactuals")


def test_4_distill_chart_moves_and_stop(page, app, shot):
    open_saved(page, curated_project(app[0], "e2e-distill"))
    distill_tiny(page)
    # The chart has loss lines and the student's validation accuracy.
    page.wait_for_function("document.querySelectorAll('#distill-chart .scatterlayer .trace').length >= 3")
    expect_text(page, "#distill-result", "student test accuracy|student validation")
    shot(page, "4-distill")
    # A long run, stopped from the button.
    page.locator("#epochs input").fill("500")
    page.locator("#start-distill").click()
    expect_text(page, "#distill-progress", r"Step \d+ of \d+")
    page.locator("#stop-distill").click()
    expect_text(page, "#distill-progress", r"Stopped at step \d+")


def test_5_compare_shows_figures(page, app, shot):
    open_saved(page, curated_project(app[0], "e2e-compare"))
    distill_tiny(page)
    tab(page, "5 · Compare")
    page.wait_for_function("document.querySelector('#compare-run input')?.value?.startsWith('run')")
    page.locator("#compare").click()
    expect_text(page, "#compare-metrics", "teacher")
    page.wait_for_selector("#boundary-view .js-plotly-plot", timeout=TIMEOUT)
    page.wait_for_selector("#edit-path .js-plotly-plot", timeout=TIMEOUT)
    expect_text(page, "#fidelity", "flip fidelity")
    shot(page, "5-compare")


def test_6_export_downloads_pairs(page, app, shot, tmp_path):
    import json

    open_saved(page, curated_project(app[0], "e2e-export"))
    distill_tiny(page)
    tab(page, "6 · Export")
    page.wait_for_function("document.querySelector('#export-run input')?.value?.startsWith('run')")
    page.locator("#prepare-export").click()
    expect_text(page, "#export-note", "Pairs written to")
    with page.expect_download() as info:
        page.locator("#download-jsonl").click()
    path = tmp_path / "pairs.jsonl"
    info.value.save_as(path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert 1 <= len(lines) <= 4 and {line["status"] for line in lines} <= {"accepted", "edited"}
    assert page.locator("#hub-token input").get_attribute("type") == "password"
    shot(page, "6-export")


def test_7_a_reload_reopens_the_saved_project(page, app, shot):
    """A new page (a reload, or another browser) reopens the project exactly as curated: nothing was lost."""
    name = curated_project(app[0], "e2e-reload", edit=True)
    open_saved(page, name)
    tab(page, "3 · Counterfactuals")
    expect_text(page, "#review-table", "edited")
    page.reload()
    page.wait_for_selector("#report")
    open_saved(page, name)
    tab(page, "3 · Counterfactuals")
    expect_text(page, "#review-table", "edited")
    expect_text(page, "#cf-stats", name)
