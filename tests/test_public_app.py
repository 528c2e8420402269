"""Public mode in the app: two visitors cannot see, open, change or resume each other's projects and runs (through the
handlers, then through gradio_client on a real server on 127.0.0.1), caches stay bounded, the queue is fair."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cod.errors import CodError, StoreError
from components import counterfactuals as C
from components import data as D
from components import distill as R
from components import export as X
from components.projects import ensure_project, open_project, project_names
from components.services import Services, Worker, acting_as, owner_for, session_owner, ui_errors
from components.state import PageState
from tests.e2e.app_server import EXAMPLE, running_app, tiny_services
from tests.tiny import make_tiny_classifier, make_word_classifier


@pytest.fixture
def public(monkeypatch):
    monkeypatch.setenv("COD_PUBLIC", "1")
    monkeypatch.delenv("SPACE_ID", raising=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("public-models")
    student = make_tiny_classifier(root / "student", hidden=16, layers=1)
    return str(make_word_classifier(root / "teacher")), str(student)


@pytest.fixture
def services(models, tmp_path, cod_home, public, monkeypatch):
    monkeypatch.setenv("COD_ALLOWED_MODELS", ",".join(models))  # the owner's list: the tiny test models
    return Services(teacher=models[0], student=models[1], store_path=tmp_path / "cod.db", artifacts=tmp_path / "art")


def visitor(services) -> PageState:
    state = PageState(teacher=services.default_teacher, student=services.default_student)
    session_owner(state)  # a fresh anonymous identity, as a session that never loaded the page gets
    with acting_as(state.owner):
        D.sample(D.load_upload(state, EXAMPLE), 8, 0)
    return state


def wait(job, timeout=120):
    start = time.time()
    while not job.done:
        assert time.time() - start < timeout, f"job {job.kind} still {job.status}"
        time.sleep(0.05)
    assert job.status == "done", job.error
    return job


def test_two_visitors_cannot_see_open_change_or_resume_each_others_work(services):
    alice, bob = visitor(services), visitor(services)
    assert alice.owner.startswith("anon:") and alice.owner != bob.owner
    with acting_as(alice.owner):
        wait(services.worker.get(C.start_generation(services, alice, "s1", C.OFFLINE)))
        C.bulk_accept(services, alice, 10)
        config = R.make_config(alice, "KD (logits)", True, 20, 2, 1, 1, 1e-3, 4, False, 8)
        run_key = wait(services.worker.get(R.start_run(services, alice, "s1", config))).result
        alice_project = alice.project
        alice_files = X.export_pairs(services, alice)
    with acting_as(bob.owner):
        assert project_names(services) == []
        with pytest.raises(StoreError) as err:
            open_project(services, bob, alice_project)
        assert alice_project in str(err.value) and "known projects" not in str(err.value)
        assert str(services.store_path) not in str(err.value)
        with pytest.raises(StoreError):
            services.store().run(int(run_key))  # what "Resume" reads first
        with pytest.raises(StoreError):
            X.zip_student(services, run_key)
        bob.project = alice_project  # a forged session state reaches nothing of alice's
        for attempt in (lambda: C.current_records(services, bob), lambda: C.undo(services, bob)):
            with pytest.raises(StoreError):
                attempt()
        bob.project = None
        plain = R.make_config(bob, "KD (logits)", False, 20, 2, 1, 1, 1e-3, 4, False, 8)
        with pytest.raises(StoreError):
            R.start_run(services, bob, "s2", plain, resume_from=int(run_key))
        assert bob.project == alice_project and C.current_records(services, bob) == []  # same name, bob's own
        assert services.artifacts_dir() != alice_files[0].parents[2]  # separate folders too
    with acting_as(alice.owner):
        assert len(C.curated(services, alice)) == 4 and project_names(services) == [alice_project]


def test_every_handler_runs_as_its_visitor(services):
    alice = visitor(services)
    seen = []
    ui_errors(lambda s: seen.append(services.store().owner))(alice)
    gen = ui_errors(lambda s: (yield services.store().owner))
    seen += list(gen(alice))
    assert seen == [alice.owner, alice.owner]
    with pytest.raises(StoreError, match="no visitor identity"):
        services.store()  # outside a request, public mode refuses rather than guess


def test_the_owner_comes_from_the_login_else_a_hashed_browser_token():
    assert owner_for("alice", "x" * 40) == ("hf:alice", "x" * 40)
    owner, token = owner_for(None, "t" * 43)
    assert owner.startswith("anon:") and token == "t" * 43 and "t" * 43 not in owner
    forged, fresh = owner_for(None, "hf:alice")  # a browser cannot claim a signed-in user
    assert forged.startswith("anon:") and fresh != "hf:alice"


def test_anonymous_folders_and_store_rows_are_removed_after_the_retention_period(services):
    alice = visitor(services)
    with acting_as(alice.owner):
        folder = services.artifacts_dir() / "runs" / "old-run"
        folder.mkdir(parents=True)
        (folder / "weights.bin").write_bytes(b"x")
        project = ensure_project(services, alice)
        services.store().start_run(project, {"method": "kd"})
    assert services.remove_expired(24, now=time.time()) == []
    with acting_as(alice.owner):
        assert project_names(services) == [project]
    assert services.remove_expired(24, now=time.time() + 25 * 3600) == [folder] and not folder.exists()
    with acting_as(alice.owner):
        assert project_names(services) == [] and services.store().runs() == []
    from cod.store import Store

    with Store(services.store_path) as on_disk:  # the SQLite file itself holds none of alice's rows
        assert on_disk.projects() == [] and on_disk.runs() == []


def test_teacher_caches_stay_within_bounds_after_10000_texts(services, monkeypatch):
    from cod.modeling.loading import clear_teacher_cache

    monkeypatch.setenv("COD_TEACHER_CACHE", "500")
    monkeypatch.setenv("COD_MAX_MODELS", "1")
    clear_teacher_cache()  # a teacher made before the limit was set keeps its own
    fresh = Services(
        teacher=services.default_teacher,
        student=services.default_student,
        store_path=services.store_path,
        artifacts=services.artifacts,
    )
    teacher = fresh.teacher()
    texts = [f"a good film number {i}" for i in range(10_000)]
    for start in range(0, len(texts), 1000):
        teacher.predict_proba(texts[start : start + 1000])
    assert len(teacher._logits) <= 500 and len(teacher._embeddings) <= 500
    probs = teacher.predict_proba(texts[:1200])  # a request larger than the cache still answers every text
    assert probs.shape == (1200, 2) and np.allclose(probs.sum(axis=1), 1)
    fresh.teacher(services.default_student)  # a second model: the first one falls out of the process cache
    assert len(fresh._teachers) == 1
    clear_teacher_cache()


def test_a_slow_model_load_does_not_freeze_predictions_of_a_loaded_one(services, monkeypatch):
    teacher = services.teacher()
    entered, release = threading.Event(), threading.Event()

    def slow_load(name, **kwargs):
        entered.set()
        release.wait(10)
        return teacher

    monkeypatch.setattr("cod.modeling.loading.load_teacher", slow_load)
    loader = threading.Thread(target=services.teacher, args=("some-other-model",))
    loader.start()
    assert entered.wait(10)
    start = time.monotonic()
    services.teacher().predict_proba(["a good film"])
    took = time.monotonic() - start
    release.set()
    loader.join()
    assert took < 5  # it did not wait for the 10-second load


def test_visitors_are_served_in_turn_with_one_running_and_a_few_waiting():
    worker = Worker(max_queued=2)
    gate, order = threading.Event(), []
    worker.submit("distill", lambda job: gate.wait(10), visitor="blocker")
    for who in ("greedy", "greedy", "greedy", "polite"):
        worker.submit("distill", lambda job, who=who: order.append(who), visitor=who)
    with pytest.raises(CodError, match="at most 3"):  # one running and two waiting is the most
        worker.submit("generate", lambda job: None, visitor="greedy")
    gate.set()
    deadline = time.time() + 10
    while len(order) < 4 and time.time() < deadline:
        time.sleep(0.02)
    assert order == ["greedy", "polite", "greedy", "greedy"]


def test_limits_refuse_oversized_requests(services, monkeypatch):
    monkeypatch.setenv("COD_MAX_EPOCHS", "5")
    alice = visitor(services)
    with pytest.raises(CodError, match="epochs=6 is above this public app's limit of 5"):
        R.make_config(alice, "KD (logits)", True, 20, 2, 1, 6, 1e-3, 4, False, 8)
    with pytest.raises(CodError, match="k=1000"):
        D.sample(alice, 1000, 0)


# --- the real server ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def public_app(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("COD_PUBLIC", "1")
    services = tiny_services(tmp_path_factory.mktemp("public-api"))
    mp.setenv("COD_ALLOWED_MODELS", f"{services.default_teacher},{services.default_student}")
    with running_app(services) as url:
        yield url
    mp.undo()


def test_two_clients_cannot_open_or_resume_each_others_projects_and_runs(public_app):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    alice, bob = Client(public_app, verbose=False), Client(public_app, verbose=False)
    for client in (alice, bob):
        client.predict(handle_file(str(EXAMPLE)), api_name="/upload")
        client.predict(8, 0, api_name="/draw")
    alice.predict(C.OFFLINE, "", "", "", api_name="/generate")
    alice.predict(10, api_name="/bulk_accept")
    alice.predict("KD (logits)", True, 20, 2, 1, 1, 1e-3, 4, False, 8, api_name="/distill")
    project = "example_reviews-k8-seed0"
    assert "example_reviews" in alice.predict(project, api_name="/open_project")[0]
    with pytest.raises(AppError, match="You have no project named"):
        bob.predict(project, api_name="/open_project")
    with pytest.raises(AppError, match="No run with id 1"):
        bob.predict(1, api_name="/resume_distill")
    with pytest.raises(AppError, match="only these models"):
        bob.predict("/etc", "some text", api_name="/predict")


def test_visitors_see_no_server_paths(services, tmp_path):
    from components.services import short_error

    err = StoreError(f"The store {tmp_path}/cod.db stayed locked: try again (see http://127.0.0.1:8080/v1/docs).")
    shown = short_error(err)
    assert str(tmp_path) not in shown and ".../cod.db" in shown and "http://127.0.0.1:8080/v1/docs" in shown
    assert str(tmp_path) not in short_error(OSError(f"[Errno 2] No such file: '{tmp_path}/x'"))


def test_every_endpoint_goes_through_the_queue_in_a_bounded_group(services):
    from app import build_app

    fns = [f for f in build_app(services).fns.values() if f.fn is not None]
    assert all(f.queue for f in fns)  # the live predictions skipped the queue before
    assert all(f.concurrency_limit is not None for f in fns)
    by_name = {f.api_name: f for f in fns if f.api_name}
    assert by_name["predict"].concurrency_id == by_name["live_counterfactual"].concurrency_id == "live"
    assert by_name["upload"].concurrency_id != "live" and by_name["upload"].concurrency_limit > 1


def test_one_visitors_teacher_settings_never_change_anothers_teacher(services, models, monkeypatch):
    from components import models as M
    from tests.fake_openai import FakeOpenAI, logprobs_reply

    monkeypatch.setenv("COD_ALLOWED_MODELS", ",".join([*models, "api:fake"]))
    monkeypatch.setattr(M, "API_DEBOUNCE_S", 0.0)
    alice, bob = visitor(services), visitor(services)
    with FakeOpenAI(lambda body: logprobs_reply({"positive": 0.8, "negative": 0.1, "yes": 0.1})) as server:
        monkeypatch.setenv("COD_LLM_BASE_URL", server.base_url)  # the owner's endpoint, used when the field is empty
        monkeypatch.setenv("COD_LLM_API_KEY", "sk-owner")
        with acting_as(bob.owner):  # bob loads it with the default prompt first
            M.check_teacher(services, bob, "api:fake")
        with acting_as(alice.owner):  # alice: her own label words and calibration, under the same name
            M.check_teacher(services, alice, "api:fake", "api", True, "positive=yes\nnegative=no")
            hers = services.teacher("api:fake")
        with acting_as(bob.owner):
            his = services.teacher("api:fake")  # by name alone, as his live prediction asks
            live = M.predict_html(services, "api:fake", "a good film")
    assert his is not hers
    assert hers.info()["calibrated"] and dict(hers.info()["prompt"]["label_words"])["positive"] == ["yes"]
    assert not his.info()["calibrated"] and dict(his.info()["prompt"]["label_words"])["positive"] != ["yes"]
    assert 'data-top="positive"' in live  # his teacher reads the answer "positive"; alice's would read "yes"


def test_a_distillation_runs_in_a_low_priority_process_and_its_error_reaches_the_visitor(services):
    alice = visitor(services)
    alice.student = "someone/else-model"  # refused in public mode, inside the distillation's own process
    with acting_as(alice.owner):
        config = R.make_config(alice, "KD (logits)", False, 20, 2, 1, 1, 1e-3, 4, False, 8)
        job = services.worker.get(R.start_run(services, alice, "s1", config))
    while not job.done:
        time.sleep(0.05)
    assert job.status == "error" and "This public app loads only these models" in job.error
    assert "someone/else-model" in job.error and [e for e in job.events if e.get("kind") == "started"]
    with acting_as(alice.owner):
        [run] = services.store().runs()
        assert run.status == "failed" and "only these models" in run.error
