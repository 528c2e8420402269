"""The owner's LLM key and the network in public mode: real servers on loopback, a resolver stub, no other network.

The owner's endpoint and the visitor's are both FakeOpenAI servers on 127.0.0.1 (each records every request's headers);
loopback is private, so in public mode the owner allow-lists what a test must reach (COD_ALLOWED_HOSTS). Refusals of
private addresses are checked with a resolver stub and a recorder on `socket.create_connection`: nothing is dialled.
"""

import logging
import socket
import threading

import httpx
import pytest

from cod import net
from cod.config import LLMConfig
from cod.counterfactuals.llm import LLMProposer
from cod.data.readers import Example
from cod.errors import ProposerError
from tests.fake_openai import FakeOpenAI, Reply, fail, ok, original_text
from tests.word_teacher import word_teacher

OWNER_KEY = "sk-OWNER-key-never-leaves-1234"
VISITOR_KEY = "sk-visitor-own-5678"


@pytest.fixture(scope="module")
def teacher():
    return word_teacher("sentiment")


@pytest.fixture
def clean_env(monkeypatch):
    names = ("COD_LLM_API_KEY", "OPENAI_API_KEY", "COD_LLM_BASE_URL", "COD_ALLOWED_HOSTS", "COD_PUBLIC", "SPACE_ID")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def dials(monkeypatch):
    """Every address a socket is opened to by this test: its own thread and the threads it starts (a background thread
    left by an earlier test, such as a client polling its server, is not this test's dial). The real function still
    runs for loopback."""
    seen: list[tuple[str, int]] = []
    real = socket.create_connection
    main = threading.current_thread()
    earlier = {t for t in threading.enumerate() if t is not main}

    def record(address, *args, **kwargs):
        if threading.current_thread() not in earlier:
            seen.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", record)
    return seen


def negate(body: dict) -> Reply:
    return ok([original_text(body).replace("good", "bad")])


def propose(url: str | None, key: str | None, teacher) -> None:
    config = LLMConfig(base_url=url, model="m", candidates=1, rounds=1, concurrency=1, timeout_s=5, max_retries=0)
    proposer = LLMProposer(config, api_key=key, cache_dir=False)
    try:
        proposer.propose([Example("the film is good", 1)], teacher)
    finally:
        proposer.close()


def authorizations(server: FakeOpenAI) -> list[str]:
    return [r.headers.get("authorization", "") for r in server.requests]


@pytest.mark.parametrize("public", ["0", "1"])
def test_the_owners_key_never_reaches_a_url_a_visitor_typed(clean_env, teacher, public):
    with FakeOpenAI(negate) as owner, FakeOpenAI(negate) as visitor:
        clean_env.setenv("COD_LLM_API_KEY", OWNER_KEY)
        clean_env.setenv("COD_LLM_BASE_URL", owner.base_url)
        clean_env.setenv("COD_PUBLIC", public)
        clean_env.setenv("COD_ALLOWED_HOSTS", visitor.base_url.split("/")[2])  # the test's "public" server
        propose(visitor.base_url, None, teacher)  # a visitor's URL, no key typed
        propose(visitor.base_url, VISITOR_KEY, teacher)  # a visitor's URL with their own key
        propose(None, None, teacher)  # the empty field: the owner's endpoint with the owner's key (finding 5)
    assert visitor.count == 2 and owner.count == 1
    assert all(OWNER_KEY not in a for a in authorizations(visitor))
    assert authorizations(visitor)[1] == f"Bearer {VISITOR_KEY}"
    assert authorizations(owner) == [f"Bearer {OWNER_KEY}"]


def test_openai_key_goes_only_to_openai_when_no_endpoint_is_configured(clean_env):
    clean_env.setenv("OPENAI_API_KEY", OWNER_KEY)
    assert net.api_key_for(None) == OWNER_KEY
    assert net.api_key_for("https://api.openai.com/v1/") == OWNER_KEY
    assert net.api_key_for("https://evil.example/v1") is None
    assert net.api_key_for("https://evil.example/v1", VISITOR_KEY) == VISITOR_KEY


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v1",
        "http://10.1.2.3/v1",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:80/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "http://192.168.0.10/v1",
        "http://100.64.0.1/v1",
        "http://0.0.0.0:8000/v1",
        "http://localhost:11434/v1",
        "http://metadata.google.internal/v1",
        "http://rebind.example/v1",
    ],
)
def test_private_visitor_urls_are_refused_in_public_mode_without_connecting(clean_env, dials, teacher, url):
    looked_up: list[str] = []
    answers = {
        "localhost": ["127.0.0.1"],
        "metadata.google.internal": ["169.254.169.254"],
        "rebind.example": ["93.184.216.34", "10.0.0.1"],
    }  # one private answer is enough to refuse

    def resolver(host, port):
        looked_up.append(host)
        return answers[host]

    clean_env.setattr(net, "resolve", resolver)
    clean_env.setenv("COD_PUBLIC", "1")
    clean_env.setenv("COD_LLM_API_KEY", OWNER_KEY)
    with pytest.raises(net.URLRefused, match="non-public address"):
        net.check_url(url)
    with pytest.raises(net.URLRefused):
        propose(url, VISITOR_KEY, teacher)
    assert dials == []
    net.check_url(url, public=False)  # locally the same URL is fine (a local LLM server)


def test_a_public_address_passes_the_check(clean_env):
    clean_env.setenv("COD_PUBLIC", "1")
    net.check_url("https://api.example.com/v1", resolver=lambda host, port: ["93.184.216.34"])
    with pytest.raises(net.URLRefused, match="not an http"):
        net.check_url("file:///etc/passwd")


def redirect_to(location: str):
    return lambda body: Reply(status=307, raw=b"", headers={"Location": location})


def test_a_redirect_to_a_private_address_is_refused_without_connecting(clean_env, dials, teacher):
    metadata = "http://169.254.169.254/latest/meta-data/"
    with FakeOpenAI(redirect_to(metadata)) as server:
        clean_env.setenv("COD_PUBLIC", "1")
        clean_env.setenv("COD_ALLOWED_HOSTS", server.base_url.split("/")[2])
        with net.guarded_http_client() as client, pytest.raises(net.URLRefused):
            client.post(server.base_url + "/chat/completions", json={})
        with pytest.raises(ProposerError, match="non-public address"):
            propose(server.base_url, VISITOR_KEY, teacher)
    assert all(host == "127.0.0.1" for host, _ in dials) and len(dials) == 2


def test_dns_is_checked_at_connect_time_too(clean_env, dials):
    """A name that passed an earlier check but resolves privately when dialled (DNS rebinding) is refused."""
    clean_env.setattr(net, "resolve", lambda host, port: ["127.0.0.1"])
    with net.guarded_http_client() as client, pytest.raises(net.URLRefused):
        client.get("http://rebinding.example/v1/models")
    assert dials == []


def test_public_errors_never_echo_the_remote_body(clean_env, teacher):
    secret = "internal-db-password=hunter2 stack trace at /srv/app"
    with FakeOpenAI(lambda body: fail(401, secret)) as server:
        clean_env.setenv("COD_ALLOWED_HOSTS", server.base_url.split("/")[2])
        clean_env.setenv("COD_PUBLIC", "1")
        with pytest.raises(ProposerError) as public_error:
            propose(server.base_url, VISITOR_KEY, teacher)
        clean_env.setenv("COD_PUBLIC", "0")
        with pytest.raises(ProposerError) as local_error:
            propose(server.base_url, VISITOR_KEY, teacher)
    assert "hunter2" not in str(public_error.value) and "Unauthorized" in str(public_error.value)
    assert "hunter2" in str(local_error.value)  # locally the server's own words help the person who runs it


def test_logged_urls_carry_no_credentials(clean_env, caplog):
    with FakeOpenAI(negate) as server, caplog.at_level(logging.INFO, logger="httpx"):
        host = server.base_url.split("/")[2]
        httpx.post(f"http://user:pa55word@{host}/v1/chat/completions?key=SECRETQ", json={"messages": []})
    assert caplog.records and "pa55word" not in caplog.text and "SECRETQ" not in caplog.text
    assert host in caplog.text
