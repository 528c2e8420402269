"""The app's handlers as plain functions, without a server: tiny real models, a real SQLite store, the example CSV."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from cod.errors import DataError, DistillError, ProposerError
from cod.store.projects import Store
from components import counterfactuals as C
from components import data as D
from components import distill as R
from components import export as X
from components.projects import open_project
from components.services import Services, Worker, ui_errors
from components.state import PageState
from tests.fake_openai import FakeOpenAI, ok, original_text
from tests.tiny import make_tiny_classifier, make_word_classifier

EXAMPLE = Path(__file__).resolve().parent.parent / "assets" / "example_reviews.csv"
SWAP = {
    "great": "awful",
    "brilliant": "terrible",
    "good": "bad",
    "fun": "dull",
    "lovely": "bland",
    "best": "worst",
    "awful": "great",
    "terrible": "brilliant",
    "bad": "good",
    "dull": "fun",
    "boring": "charming",
    "worst": "best",
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A word-weight teacher (its verdicts follow sentiment words) and a tiny student, saved like Hub models."""
    root = tmp_path_factory.mktemp("app-models")
    return str(make_word_classifier(root / "teacher")), str(
        make_tiny_classifier(root / "student", hidden=16, layers=1, seed=1)
    )


@pytest.fixture
def services(models, tmp_path, cod_home):
    return Services(teacher=models[0], student=models[1], store_path=tmp_path / "cod.db", artifacts=tmp_path / "art")


@pytest.fixture
def drawn(services):
    """A session with the example CSV loaded and a k=8 draw."""
    state = PageState(teacher=services.default_teacher, student=services.default_student)
    D.load_upload(state, EXAMPLE)
    return D.sample(state, 8, 0)


def wait(job, timeout=120):
    start = time.time()
    while not job.done:
        assert time.time() - start < timeout, f"job {job.kind} still {job.status}"
        time.sleep(0.05)
    return job


def generate(services, state, session="s1", kind=C.OFFLINE, **kw):
    job = wait(services.worker.get(C.start_generation(services, state, session, kind, **kw)))
    assert job.status == "done", job.error
    return job


def test_upload_shows_the_library_report_and_draws_balanced_interleaved(drawn):
    assert drawn.mapping == {"text": "review", "label": "sentiment", "text_pair": None}
    html = D.report_html(drawn)
    assert "Read 40 rows from example_reviews.csv" in html and "Duplicates: none." in html
    assert [e.label for e in drawn.few_shot] == [0, 1] * 4
    frame = D.few_shot_frame(drawn)
    assert list(frame["role"]) == ["CoD real half"] * 4 + ["KD only"] * 4
    assert len(drawn.validation) == 32 and not set(drawn.validation) & set(drawn.few_shot)


def test_a_bad_upload_is_the_library_error_word_for_word(tmp_path):
    bad = tmp_path / "empty.csv"
    bad.write_text("")
    with pytest.raises(DataError) as err:
        D.load_upload(PageState(), bad)
    with pytest.raises(Exception) as shown:
        ui_errors(D.load_upload)(PageState(), bad)
    assert type(shown.value).__name__ == "Error" and str(err.value) in str(shown.value)


def test_live_prediction_follows_the_teacher(services):
    from components.models import predict_html

    assert 'data-top="positive"' in predict_html(services, services.default_teacher, "a great , brilliant film")
    assert 'data-top="negative"' in predict_html(services, services.default_teacher, "a dull , terrible film")


def test_generation_saves_every_counterfactual_to_the_store_as_it_goes(services, drawn):
    job = generate(services, drawn)
    assert job.events[-1] == {"done": 4, "total": 4}
    reopened = Store(services.store_path)  # a second connection, as after a restart
    records = reopened.counterfactuals(drawn.project)
    assert len(records) == 4 and all(r.status == "proposed" for r in records)
    frame = C.review_frame(services, drawn)
    assert list(frame["#"]) == [1, 2, 3, 4] and frame["words"].min() >= 1
    assert all("cod-ins" in h for h in frame[C.COLUMNS[3]])  # the edit highlighted as a diff


def test_review_table_shows_fluency_and_filters_by_it(services, drawn):
    from cod.counterfactuals.fluency import DEFAULT_FLUENCY_KIND, FLUENT_AT

    generate(services, drawn)
    frame = C.review_frame(services, drawn)
    assert frame["fluency"].notna().all()  # every proposal stored with its fluency
    shown = {}
    for choice, fluent in C.FLUENCY_FILTERS.items():
        drawn.extra["fluency_filter"] = choice
        part = C.review_frame(services, drawn)
        assert len(part) == len(drawn.rows)
        if fluent is not None:
            assert ((part["fluency"] >= FLUENT_AT[DEFAULT_FLUENCY_KIND]) == fluent).all()  # the default's tolerance
        shown[fluent] = set(part["#"])
    assert shown[True] | shown[False] == shown[None] and not shown[True] & shown[False]
    drawn.extra["fluency_filter"] = C.ALL_ROWS


def test_edit_accept_bulk_undo_redo_survive_a_reload(services, drawn):
    generate(services, drawn)
    C.current_records(services, drawn)
    first = drawn.selected
    original, text, live = C.editor_values(services, drawn)
    assert "Teacher on the original" in original and "cod-live" in live
    edited = text.replace(".", "!") if "." in text else text + " !"
    assert "cod-probs" in C.live_html(services, drawn, edited)
    C.set_status(services, drawn, "accepted", edited)  # saves the edit, keeps it, moves on
    assert drawn.selected != first
    store = Store(services.store_path)
    rec = store.counterfactual(first)
    assert rec.status == "edited" and rec.text == edited.strip() and rec.probs is not None
    expected = sum(r.status == "proposed" and r.counterfactual.flipped for r in store.counterfactuals(drawn.project))
    assert C.bulk_accept(services, drawn, 10) == expected > 0
    statuses = [r.status for r in C.current_records(services, drawn)]
    assert C.undo(services, drawn).startswith("Undid")
    assert [r.status for r in C.current_records(services, drawn)] != statuses
    assert C.undo(services, drawn, redo=True).startswith("Redid")
    assert [r.status for r in C.current_records(services, drawn)] == statuses
    # A fresh session reopens the project exactly as saved.
    again = open_project(services, PageState(), drawn.project)
    assert [e.text for e in again.few_shot] == [e.text for e in drawn.few_shot]
    assert [(r.status, r.text) for r in C.current_records(services, again)] == [
        (r.status, r.text) for r in C.current_records(services, drawn)
    ]


def test_a_bfloat16_live_preview_says_so_and_the_saved_edit_holds_the_teachers_own_scores(
    services, drawn, models, monkeypatch, tmp_path
):
    import numpy as np

    from cod.modeling.loading import load_classifier
    from cod.modeling.scoring import Teacher

    monkeypatch.setenv("COD_LIVE_PRECISION", "bfloat16")
    generate(services, drawn)
    C.current_records(services, drawn)
    _, text, _ = C.editor_values(services, drawn)
    edited = f"{text} , a brilliant film"
    assert "bfloat16 preview; saved scores are float32" in C.live_html(services, drawn, edited)
    preview = services.live_proba(services.teacher(drawn.teacher), edited)
    C.save_edit(services, drawn, edited)
    saved = np.array(Store(services.store_path).counterfactual(drawn.selected).probs)
    canonical = Teacher(*load_classifier(models[0])).predict_proba([edited])[0]  # a float32 teacher of its own
    np.testing.assert_allclose(saved, canonical, rtol=0, atol=1e-6)
    assert np.abs(preview - canonical).max() > 1e-6  # the preview did differ: the saved scores are not its own
    from components.models import predict_html

    monkeypatch.setenv("COD_LIVE_PRECISION", "teacher")
    exact = Services(teacher=models[0], student=models[1], store_path=tmp_path / "b.db", artifacts=tmp_path / "b")
    assert "preview" not in predict_html(exact, models[0], "a brilliant film")


def test_bulk_accept_takes_only_flipped_small_edits_in_one_undo_step(services, drawn):
    generate(services, drawn)
    records = C.current_records(services, drawn)
    expected = [r.id for r in records if r.counterfactual.flipped and r.counterfactual.words_changed <= 1]
    assert C.bulk_accept(services, drawn, 1) == len(expected)
    C.undo(services, drawn)
    assert all(r.status == "proposed" for r in C.current_records(services, drawn))


def test_shrink_and_regenerate(services, drawn):
    generate(services, drawn)
    records = C.current_records(services, drawn)
    drawn.selected = next(r.id for r in records if r.counterfactual.flipped)  # only a flip can be shrunk
    message = C.shrink_selected(services, drawn)
    assert message.startswith(("Already minimal", "Shrunk"))
    before = drawn.selected
    message = C.regenerate_selected(services, drawn, C.OFFLINE)
    store = Store(services.store_path)
    if message.startswith("Regenerated"):
        assert drawn.selected != before and store.counterfactual(before).status == "rejected"
    else:
        assert "No other counterfactual" in message


def test_stop_ends_generation_early_and_saves_nothing_half_done(services, drawn):
    job_id = C.start_generation(services, drawn, "s1", C.OFFLINE)
    job = services.worker.get(job_id)
    job.stop()
    wait(job)
    saved = Store(services.store_path).counterfactuals(drawn.project)
    assert job.status == "stopped" and len(saved) < 4
    assert all(r.text for r in saved)


def test_a_second_generation_in_the_same_session_is_refused(services, drawn):
    gate = __import__("threading").Event()
    services.worker.submit("generate", lambda job: gate.wait(10), owner="s1")  # the session's job is busy
    with pytest.raises(ProposerError, match="already being generated"):
        C.start_generation(services, drawn, "s1", C.OFFLINE)
    gate.set()


def test_llm_key_is_used_but_never_kept_or_logged(services, drawn, caplog):
    secret = "sk-test-SECRET-123"

    def script(body):
        text = original_text(body)
        return ok([" ".join(SWAP.get(w, w) for w in text.split())])

    with FakeOpenAI(script) as server, caplog.at_level(logging.DEBUG):
        generate(services, drawn, kind=C.LLM, base_url=server.base_url, model="fake", api_key=secret)
        assert server.requests[0].headers["authorization"] == f"Bearer {secret}"
    records = Store(services.store_path).counterfactuals(drawn.project)
    assert len(records) == 4 and all(r.source == "llm" for r in records)
    assert secret not in repr(drawn) and secret not in json.dumps(drawn.extra, default=str)
    assert secret not in caplog.text
    assert secret not in Path(services.store_path).read_bytes().decode("latin-1")


def test_two_sessions_do_not_see_each_others_work(services, drawn):
    other = D.sample(D.load_upload(PageState(teacher=drawn.teacher, student=drawn.student), EXAMPLE), 8, 0)
    generate(services, drawn)
    assert other.project is None and C.current_records(services, other) == []
    assert "no counterfactuals yet" in C.stats_html(services, other)


def test_distill_runs_in_the_worker_records_the_run_and_draws_the_chart(services, drawn):
    generate(services, drawn)
    C.bulk_accept(services, drawn, 10)
    config = R.make_config(drawn, "KD (logits)", True, 20, 2, 1, 2, 1e-3, 4, False, 8)
    job = wait(services.worker.get(R.start_run(services, drawn, "s1", config)))
    assert job.status == "done", job.error
    kinds = [R._as_dict(e)["kind"] for e in job.events]
    assert kinds[0] == "started" and "step" in kinds and "eval" in kinds and kinds[-1] == "done"
    fig = R.chart(job.events)
    names = {t.name for t in fig.data}
    assert {"loss", "ce", "kd", "student validation accuracy"} <= names
    run = Store(services.store_path).runs(drawn.project)[0]
    assert run.status == "done" and run.metrics["method"] == "kd+cod" and (Path(run.artifact_dir) / "model").exists()
    assert "student validation" in R.result_html(services, job)
    # Export: curated pairs and the student.
    jsonl, csv = X.export_pairs(services, drawn)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert lines and all(line["status"] in ("accepted", "edited") for line in lines) and csv.stat().st_size > 0
    assert X.zip_student(services, job.result).stat().st_size > 1000


def test_a_long_runs_chart_stays_small_and_ends_at_the_last_step():
    events = [{"kind": "step", "step": i, "losses": {"loss": 1.0 / (i + 1), "kd": 0.5}} for i in range(1, 5001)]
    fig = R.chart(events)
    loss = next(t for t in fig.data if t.name == "loss")
    assert len(loss.x) <= R.MAX_POINTS + 1 and loss.x[0] == 1 and loss.x[-1] == 5000
    assert list(loss.x) == sorted(loss.x)


def test_stop_a_distillation_refuse_a_second_start_then_resume_it(services, drawn):
    config = R.make_config(drawn, "KD (logits)", False, 20, 2, 1, 6, 1e-3, 2, False, 8)
    job = services.worker.get(R.start_run(services, drawn, "s1", config))
    with pytest.raises(DistillError, match="already queued or running"):
        R.start_run(services, drawn, "s1", config)
    while not any(R._as_dict(e).get("kind") == "step" for e in job.events) and not job.done:
        time.sleep(0.05)
    job.stop()
    wait(job)
    assert job.status == "stopped"
    stopped = Store(services.store_path).runs(drawn.project)[0]
    assert stopped.status == "stopped"
    resumed = wait(services.worker.get(R.start_run(services, drawn, "s1", config, resume_from=stopped.id)))
    assert resumed.status == "done", resumed.error
    latest = Store(services.store_path).runs(drawn.project)[0]
    assert latest.resumed_from == stopped.id and latest.metrics["resumed_from_step"] >= 1
    frame = R.runs_frame(services, drawn)
    assert list(frame["run"]) == [latest.id, stopped.id] and frame["status"][0] == f"done (from {stopped.id})"
    with pytest.raises(DistillError, match="only a stopped, failed or interrupted run"):
        R.start_run(services, drawn, "s1", config, resume_from=latest.id)


def test_cod_without_curated_counterfactuals_is_refused_clearly(services, drawn):
    from cod.config import DistillConfig

    config = R.make_config(drawn, "KD (logits)", True, 20, 2, 1, 1, 1e-3, 4, False)
    defaults = DistillConfig()  # what the form does not set is the library's default, not a second copy of it
    assert (config.max_validation, config.patience) == (defaults.max_validation, defaults.patience)
    with pytest.raises(DistillError, match="accept some on the Counterfactuals tab"):
        R.start_run(services, drawn, "s1", config)


def test_worker_runs_one_job_per_lane_in_order_and_reports_queue_position():
    import threading

    worker, gate, order = Worker(), threading.Event(), []
    a = worker.submit("distill", lambda job: (gate.wait(5), order.append("a")))
    b = worker.submit("distill", lambda job: order.append("b"))
    time.sleep(0.1)
    assert a.status == "running" and b.status == "queued" and worker.ahead_of(b) == 1
    gate.set()
    wait(b)
    assert order == ["a", "b"]
    failing = wait(worker.submit("distill", lambda job: 1 / 0))
    assert failing.status == "error" and "ZeroDivisionError" in failing.error


def test_build_app_makes_blocks_without_launching(services):
    import gradio as gr

    from app import build_app, launch_options

    blocks = build_app(services)
    assert isinstance(blocks, gr.Blocks) and not getattr(blocks, "is_running", False)
    assert "--cod-teacher" in launch_options()["css"]


def test_gpu_wrapper_is_a_no_op_without_spaces_and_uses_spaces_gpu_when_present(monkeypatch):
    import sys
    import types

    from components.services import gpu

    def work(x):
        return x + 1

    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.setattr("builtins.__import__", _no_spaces(__import__))
    assert gpu(work) is work
    monkeypatch.undo()
    seen = {}
    fake = types.ModuleType("spaces")
    fake.GPU = lambda duration: (lambda f: seen.setdefault("wrapped", (f, duration)) and (lambda *a: f(*a) * 10))
    monkeypatch.setitem(sys.modules, "spaces", fake)
    wrapped = gpu(work, duration=42)
    assert seen["wrapped"] == (work, 42) and wrapped(1) == 20


def _no_spaces(real_import):
    def fake(name, *args, **kwargs):
        if name == "spaces":
            raise ImportError("no spaces here")
        return real_import(name, *args, **kwargs)

    return fake


def test_while_the_demo_teacher_builds_the_page_says_so_with_progress(monkeypatch, tmp_path):
    import components.services as S
    from app import status_html
    from components.models import predict_html

    monkeypatch.setattr(S, "demo_teacher_ready", lambda: False)
    services = Services(store_path=tmp_path / "cod.db")
    ready, message = services.teacher_status()
    assert not ready and "being built" in message
    services._build_job = S.Job(
        kind="build", status=S.RUNNING, events=[{"fraction": 0.42, "message": "Embedding 10/20"}]
    )
    assert "42% · Embedding 10/20" in status_html(services)
    assert "being built" in predict_html(services, "demo", "a fine film")
    with pytest.raises(Exception, match="being built"):
        services.teacher("demo")
    monkeypatch.setattr(S, "demo_teacher_ready", lambda: True)
    assert status_html(services) == ""


def test_compare_plots_a_sweep_recorded_by_the_command_line(services):
    from components import compare

    store = services.store()
    sweep_id = store.add_sweep(None, {"task": "demo"}, label="cli")
    store.add_sweep_results(
        sweep_id,
        [  # the columns `cod sweep` writes to results.csv
            {
                "method": m,
                "k": k,
                "seed": s,
                "student_accuracy": 0.6 + 0.01 * k / 8 + 0.02 * (m == "kd+cod"),
                "teacher_accuracy": 0.87,
            }
            for m in ("kd", "kd+cod")
            for k in (8, 16)
            for s in (0, 1)
        ],
    )
    fig = compare.accuracy_figure(
        services, PageState(teacher=services.default_teacher, student=services.default_student)
    )
    assert fig is not None
    names = {t.name for t in fig.data}
    assert any("kd+cod" in (n or "") for n in names), names


def test_the_first_page_load_keeps_a_file_uploaded_before_it_ran(services, drawn):
    """An upload that wins the race with the page's first load is not replaced by the default task."""
    from app import build_app

    blocks = build_app(services)
    (first_visit,) = [f.fn for f in blocks.fns.values() if getattr(f.fn, "__name__", "") == "on_first_visit"]
    state, report, *_ = first_visit(drawn, "demo", 16, 0)
    assert state.source_path == drawn.source_path and "example_reviews" in report
    assert len(state.few_shot) == 8  # the visitor's own draw, not the default task's k=16
