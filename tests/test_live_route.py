"""The live previews' light route (components/live_route.py) on a real server on 127.0.0.1 in public mode: a key
acts only as its own session (visitor and editor), errors are short and pathless, a visitor's older keystrokes are
superseded by the newest, one visitor's slow preview does not hold up another's, and the bounds hold."""

from __future__ import annotations

import gc
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from components import counterfactuals as C
from components.live_route import LiveKeys
from components.state import PageState
from tests.e2e.app_server import EXAMPLE, running_app, tiny_services


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(services, url) of the app in public mode with tiny models."""
    mp = pytest.MonkeyPatch()
    mp.setenv("COD_PUBLIC", "1")
    root = tmp_path_factory.mktemp("live-route")
    services = tiny_services(root)
    mp.setenv("COD_ALLOWED_MODELS", f"{services.default_teacher},{services.default_student}")
    with running_app(services) as url:
        yield services, url, root
    mp.undo()


def post(url: str, kind: str, body, raw: bytes | None = None) -> tuple[int, dict]:
    """(status, JSON reply) of one POST to the live route."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}cod/live/{kind}", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def editing_visitor(url: str):
    """A gradio_client session that uploaded the example, drew k=8 and generated: its editor shows a counterfactual."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    client.predict(handle_file(str(EXAMPLE)), api_name="/upload")
    client.predict(8, 0, api_name="/draw")
    client.predict(C.OFFLINE, "", "", "", api_name="/generate")
    return client, client.predict(api_name="/live_key")


def test_a_key_acts_only_as_its_own_session(server):
    from gradio_client import Client

    services, url, _ = server
    alice, alice_key = editing_visitor(url)
    bob = Client(url, verbose=False)
    bob_key = bob.predict(api_name="/live_key")
    assert bob_key != alice_key and bob.predict(api_name="/live_key") == bob_key  # one key per session, stable

    status, reply = post(
        url, "predict", {"key": alice_key, "teacher": services.default_teacher, "text": "a dull film"}
    )
    assert status == 200 and 'data-top="negative"' in reply["html"]
    status, reply = post(
        url, "predict", {"key": alice_key, "teacher": services.default_teacher, "text": "a great film"}
    )
    assert status == 200 and 'data-top="positive"' in reply["html"]
    # Alice's editor: her counterfactual's original text and target come from her session, answered live.
    status, reply = post(url, "counterfactual", {"key": alice_key, "text": "a brilliant , great film"})
    assert status == 200 and "cod-live" in reply["html"] and "word(s) changed" in reply["html"]
    # Bob's key reaches only Bob's session: no editor open there, whatever project or record the request names.
    forged = {"key": bob_key, "text": "a brilliant , great film", "project": "example_reviews-k8-seed0", "id": 1}
    assert post(url, "counterfactual", forged) == (200, {"html": ""})
    # A key nobody was given is refused, and tells nothing.
    status, reply = post(url, "counterfactual", {"key": "A" * 32, "text": "a brilliant , great film"})
    assert status == 403 and "reload the page" in reply["error"] and "cod-live" not in reply["html"]


def test_errors_are_short_and_show_no_server_paths(server):
    from gradio_client import Client

    services, url, root = server
    key = Client(url, verbose=False).predict(api_name="/live_key")
    status, reply = post(url, "predict", {"key": key, "teacher": "/etc", "text": "some text"})
    assert status == 400 and "only these models" in reply["html"] and str(root) not in reply["html"]
    assert post(url, "predict", None, raw=b"{not json")[0] == 400
    assert post(url, "predict", {"key": key, "text": 5})[0] == 400
    assert post(url, "predict", {"key": key, "text": "x" * 70_000})[0] == 413
    assert post(url, "nothing", {"key": key, "text": "x"})[0] == 404


def test_the_newest_keystroke_supersedes_waiting_ones_and_other_visitors_are_not_held_up(server, monkeypatch):
    from gradio_client import Client

    from components import models as M

    services, url, _ = server
    slow_key, other_key = (Client(url, verbose=False).predict(api_name="/live_key") for _ in range(2))
    gate, entered = threading.Event(), threading.Event()
    real = M.predict_html

    def gated(services_, teacher, text):  # the slow visitor's first preview waits at the gate (a slow API teacher)
        if text == "hold":
            entered.set()
            assert gate.wait(60)
        return real(services_, teacher, text)

    monkeypatch.setattr(M, "predict_html", gated)
    replies: dict[str, tuple[int, dict]] = {}

    def send(key: str, text: str) -> threading.Thread:
        body = {"key": key, "teacher": services.default_teacher, "text": text}
        thread = threading.Thread(target=lambda: replies.__setitem__(text, post(url, "predict", body)))
        thread.start()
        return thread

    first = send(slow_key, "hold")
    assert entered.wait(60)
    waiting = [send(slow_key, "a dull film")]
    time.sleep(0.3)  # arrives after the one above: the newest keystroke
    waiting.append(send(slow_key, "a great film"))
    waiting[0].join(30)
    assert replies["a dull film"] == (200, {"superseded": True}) and first.is_alive()  # answered at once
    # Another visitor is answered while the slow visitor's preview still computes.
    status, reply = post(
        url, "predict", {"key": other_key, "teacher": services.default_teacher, "text": "a dull film"}
    )
    assert status == 200 and 'data-top="negative"' in reply["html"] and first.is_alive()
    gate.set()
    for thread in [first, *waiting]:
        thread.join(60)
    assert replies["hold"][0] == 200 and "cod-probs" in replies["hold"][1]["html"]
    assert replies["a great film"][0] == 200 and 'data-top="positive"' in replies["a great film"][1]["html"]


def test_a_burst_of_keystrokes_leaves_one_preview_waiting(server, monkeypatch):
    from gradio_client import Client

    from components import models as M

    services, url, _ = server
    key = Client(url, verbose=False).predict(api_name="/live_key")
    gate, entered = threading.Event(), threading.Event()
    real = M.predict_html
    computed: list[str] = []

    def gated(services_, teacher, text):
        computed.append(text)
        entered.set()
        assert gate.wait(60)
        return real(services_, teacher, text)

    monkeypatch.setattr(M, "predict_html", gated)
    replies: dict[str, tuple[int, dict]] = {}

    def send(text: str) -> threading.Thread:
        body = {"key": key, "teacher": services.default_teacher, "text": text}
        thread = threading.Thread(target=lambda: replies.__setitem__(text, post(url, "predict", body)))
        thread.start()
        return thread

    threads = [send("first")]
    assert entered.wait(60)
    burst = [f"a film {i}" for i in range(10)]
    for text in burst:  # ten keystrokes while the first preview still computes
        threads.append(send(text))
        time.sleep(0.05)
    deadline = time.time() + 30
    while len(replies) < len(burst) - 1 and time.time() < deadline:
        time.sleep(0.05)
    # All but the newest were answered at once, while the first still computes: nothing of theirs waits.
    assert all(replies[t] == (200, {"superseded": True}) for t in burst[:-1]) and threads[0].is_alive()
    gate.set()
    for thread in threads:
        thread.join(60)
    assert computed == ["first", burst[-1]] and replies[burst[-1]][0] == 200


def test_keys_are_bounded_and_die_with_their_session():
    keys = LiveKeys(capacity=3)
    states = [PageState() for _ in range(4)]
    issued = [keys.issue(s) for s in states]
    assert keys.issue(states[3]) == issued[3] and len(set(issued)) == 4
    assert keys.resolve(issued[0]) is None  # the least recently used fell out
    assert keys.resolve(issued[3]) is states[3]
    del states[3]
    gc.collect()
    assert keys.resolve(issued[3]) is None  # Gradio dropped the session: its key goes with it
    assert keys.resolve(None) is None and keys.resolve("short") is None and keys.resolve(["a" * 32]) is None


def test_gradio_events_skip_the_per_event_summary_and_the_matplotlib_search(tmp_path, monkeypatch):
    import sys

    from gradio.queueing import Queue
    from gradio_client import Client

    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", raising=False)  # as on a fresh server
    monkeypatch.setenv("COD_PUBLIC", "0")  # any mode: the module's server above runs in public mode
    summaries, searches = [], []
    real = Queue._get_df
    monkeypatch.setattr(
        Queue, "_get_df", staticmethod(lambda records: summaries.append(len(records)) or real(records))
    )

    class Spy:  # sees every import that is not already loaded
        @staticmethod
        def find_spec(name, path=None, target=None):
            searches.append(name) if name.split(".")[0] == "matplotlib" else None

    monkeypatch.setattr(sys, "meta_path", [Spy(), *sys.meta_path])
    services = tiny_services(tmp_path)
    with running_app(services) as url:
        client = Client(url, verbose=False)
        searches.clear()  # the app's own check, once, while it was built
        for text in ("a dull film", "a great film", "a film"):
            assert "cod-probs" in client.predict(services.default_teacher, text, api_name="/predict")
    assert summaries == [] and searches == []  # each event paid a pandas group-by and two sys.path searches


def test_a_request_that_goes_away_while_waiting_leaves_the_visitors_lane_usable():
    import asyncio

    from components.live_route import _Lane

    async def scenario() -> bool:
        lane = _Lane()
        await lane.lock.acquire()  # a preview computing
        waiting = asyncio.ensure_future(lane.turn("predict"))
        await asyncio.sleep(0.01)
        waiting.cancel()  # its request went away
        await asyncio.gather(waiting, return_exceptions=True)
        lane.lock.release()  # the computing preview ends
        await asyncio.sleep(0.01)
        got = await asyncio.wait_for(lane.turn("predict"), 5)  # the visitor's next keystroke gets its turn
        lane.lock.release()
        return got

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # a loop of its own (earlier tests may leave one set in this thread)
        assert pool.submit(asyncio.run, scenario()).result(timeout=30)
