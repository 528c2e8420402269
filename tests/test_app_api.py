"""The running app through its API with gradio_client: a real server on 127.0.0.1, tiny models, a temp store."""

from __future__ import annotations

import pytest

from tests.e2e.app_server import EXAMPLE, running_app, tiny_services


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    services = tiny_services(tmp_path_factory.mktemp("api"))
    with running_app(services) as url:
        yield url


@pytest.fixture
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def default_teacher(client) -> str:
    """The teacher name the app serves by default (the teacher Textbox's initial value)."""
    for component in client.config["components"]:
        if component.get("props", {}).get("elem_id") == "teacher-name":
            return component["props"]["value"]
    raise AssertionError("no teacher-name textbox in the app config")


def test_live_prediction_endpoint_answers_with_teacher_probabilities(client):
    teacher = default_teacher(client)
    good = client.predict(teacher, "a great , brilliant film", api_name="/predict")
    bad = client.predict(teacher, "a dull , terrible film", api_name="/predict")
    assert 'data-top="positive"' in good and 'data-top="negative"' in bad


def test_unknown_teacher_is_a_short_library_error(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict("/nowhere/such-model", "some text", api_name="/predict")
    assert "nowhere/such-model" in str(err.value) and "Traceback" not in str(err.value)


def test_upload_draw_generate_and_bulk_accept_in_one_session(client):
    from gradio_client import handle_file

    report = client.predict(handle_file(str(EXAMPLE)), api_name="/upload")[0]
    assert "Read 40 rows from example_reviews.csv" in report
    client.predict(8, 0, api_name="/draw")
    out = client.predict("Offline search (lexicon + teacher)", "", "", "", api_name="/generate")
    stats, progress = out[0], out[-1]
    assert "Done: 4 of 4 examples" in progress and "<b>4</b><span>examples</span>" in stats
    stats = client.predict(10, api_name="/bulk_accept")[0]
    assert "<span>accepted</span>" in stats and "<b>0</b><span>to review</span>" in stats


def test_sessions_are_separate(app_url):
    """A second client starts with no data: the first client's session state never leaks into it."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    other = Client(app_url, verbose=False)
    with pytest.raises(AppError, match="No data yet"):
        other.predict(8, 0, api_name="/draw")


def test_run_history_is_off_so_keys_typed_into_the_app_are_never_saved(client):
    """Gradio's run history would keep every call's inputs (the API key, the Hub token) in the browser."""
    assert client.config.get("run_history") is False
