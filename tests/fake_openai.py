"""A small real HTTP server on 127.0.0.1 speaking OpenAI's /v1/chat/completions, playing scripted replies.

Tests point the real `openai` client at `server.base_url`. A reply is chosen per request by a `script`: a
callable `(body: dict) -> Reply`, or a `Scripted` table of replies per original text (played in order, the
last one repeating). A `Reply` can be a normal completion (with the first token's `top_logprobs` when the request
asks for logprobs, and one choice per `n`), an HTTP error with headers (429 + Retry-After, 503, 401), a body that is
not JSON, or a delay longer than the client's timeout. The server can refuse logprobs with a 400, as several
reasoning models do. It records every request (body, headers, time) and the most requests it had in flight at once.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """What the server answers to one request."""

    content: str | None = ""  # the assistant message (None: a message with null content)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait before answering (longer than the client's timeout: a timeout)
    raw: bytes | None = None  # answer these bytes instead of a JSON completion (a broken body)
    error: str = ""  # message of an error body (status >= 400)
    top_logprobs: list[tuple[str, float]] | None = (
        None  # first answer token's alternatives (token, logprob), best first
    )
    choices: list[str] | None = None  # one content per choice (sampling with `n`); None: `content` n times


def ok(content: str | list[str], **kw) -> Reply:
    """A completion whose content is `content`, or a JSON list of strings."""
    return Reply(content=json.dumps(content) if isinstance(content, list) else content, **kw)


def fail(status: int, error: str = "scripted failure", **kw) -> Reply:
    """An HTTP error with an OpenAI-shaped error body."""
    return Reply(content=None, status=status, error=error, **kw)


def logprobs_reply(probs: dict[str, float], **kw) -> Reply:
    """A one-token answer whose alternatives have these probabilities (the most likely is the answer)."""
    import math

    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    return Reply(content=ranked[0][0], top_logprobs=[(t, math.log(p)) for t, p in ranked], **kw)


def teacher_text(body: dict) -> str:
    """The text an LLM teacher asked about: between `Text: ` and the blank line of its default prompt."""
    for message in body.get("messages", []):
        content = message.get("content") or ""
        if message.get("role") == "user" and "Text: " in content:
            return content.split("Text: ", 1)[1].split("\n\n", 1)[0]
    return ""


def original_text(body: dict) -> str:
    """The text an LLM proposer asked about: the `Text: "..."` line of its first user message."""
    for message in body.get("messages", []):
        if message.get("role") == "user":
            content = message.get("content") or ""
            marker = content.rfind("\nText: ")
            if marker != -1:
                return json.loads(content[marker + len("\nText: ") :])
            return content
    return ""


class Scripted:
    """Replies per original text, played in order (the last one repeats); `default` for texts not listed."""

    def __init__(self, table: dict[str, list[Reply]], default: Reply | Callable[[dict], Reply] | None = None):
        self.table = {k: list(v) for k, v in table.items()}
        self.default = default
        self.seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, body: dict) -> Reply:
        text = original_text(body)
        with self._lock:
            if text not in self.table:
                if self.default is None:
                    return fail(400, f"no scripted reply for {text!r}")
                return self.default(body) if callable(self.default) else self.default
            i = self.seen.get(text, 0)
            self.seen[text] = i + 1
            replies = self.table[text]
            return replies[min(i, len(replies) - 1)]


@dataclass
class Request:
    """One request the server received."""

    body: dict
    headers: dict[str, str]  # names in lower case
    time: float  # time.monotonic() on arrival


class FakeOpenAI:
    """The server; use as a context manager. `base_url` ends in /v1 like a real OpenAI-compatible server."""

    def __init__(self, script: Callable[[dict], Reply], refuse_logprobs: bool = False, honour_n: bool = True):
        """`refuse_logprobs`: answer a request asking for logprobs with a 400, as several reasoning models do;
        `honour_n` False: answer one choice whatever `n` asks (as some servers do)."""
        self.script = script
        self.refuse_logprobs = refuse_logprobs
        self.honour_n = honour_n
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.tokens = 0  # total_tokens reported in all usage blocks
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                body = json.loads(raw or b"{}")
                with fake._lock:
                    fake.requests.append(
                        Request(body, {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
                    )
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if fake.refuse_logprobs and body.get("logprobs"):
                        self._send(
                            400,
                            {
                                "error": {
                                    "message": "logprobs are not supported with this model",
                                    "type": "invalid_request_error",
                                    "param": "logprobs",
                                }
                            },
                        )
                        return
                    reply = fake.script(body)
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    self._answer(body, reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout): nothing to answer
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _answer(self, body: dict, reply: Reply) -> None:
                if reply.raw is not None:
                    return self._send(reply.status, reply.raw, reply.headers)
                if reply.status >= 400:
                    error = {"message": reply.error, "type": "scripted", "code": str(reply.status)}
                    return self._send(reply.status, {"error": error}, reply.headers)
                n = int(body.get("n") or 1)
                contents = reply.choices if reply.choices is not None else [reply.content] * n
                contents = contents if fake.honour_n else contents[:1]
                prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
                completion = sum(len((c or "").split()) for c in contents)
                with fake._lock:
                    fake.tokens += prompt + completion
                choices = []
                for i, content in enumerate(contents):
                    choice = {
                        "index": i,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                    if body.get("logprobs") and reply.top_logprobs is not None:
                        top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in reply.top_logprobs]
                        first = top[0]
                        choice["logprobs"] = {
                            "content": [{**first, "top_logprobs": top[: int(body.get("top_logprobs") or 0)]}],
                            "refusal": None,
                        }
                    choices.append(choice)
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(fake.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "fake"),
                        "choices": choices,
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": completion,
                            "total_tokens": prompt + completion,
                        },
                    },
                    reply.headers,
                )

            def _send(self, status: int, payload, headers: dict[str, str] | None = None) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, and tests start many servers.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def count(self) -> int:
        """Requests received so far."""
        with self._lock:
            return len(self.requests)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
