"""The live previews' light path: the browser fetches one small JSON route per keystroke instead of a Gradio event.

A Gradio event costs the server a queue join, an event stream and the queue's bookkeeping on every keystroke; on two
cores shared by 20 visitors that, not the teacher, set the live round trip. Here the page's `js=` function POSTs
{key, text[, teacher]} to `/cod/live/<kind>` and puts the returned HTML in place. The key is a random capability the
page got on load, bound (weakly) to that session's own `PageState`, so a request acts only as that session's visitor
and on that session's editor: nobody names a project here. Bounded and fair like the queue: a visitor has one preview
computing at a time and one waiting per kind (a newer keystroke answers the one waiting before it as superseded at
once); at most `COD_LIVE_CONCURRENCY` (32) compute at once, taken in arrival order; at most `COD_QUEUE_SIZE` (256)
requests are in the route at once.
The Gradio endpoints (`/predict`, `/live_counterfactual`) stay for API clients and on ZeroGPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

from starlette.requests import Request

MAX_BODY = 64 * 1024  # bytes of JSON per request: a text box's worth, far beyond any sentence being edited


class LiveKeys:
    """Random keys, each bound to one session's `PageState` (weakly: the key dies with the session); LRU-bounded."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._refs: OrderedDict[str, weakref.ref] = OrderedDict()
        self._lock = threading.Lock()
        self.capacity = capacity

    def issue(self, state) -> str:
        """The key of this session's state (made on first call; the same key afterwards)."""
        with self._lock:
            key = state.extra.get("live_key")
            if key and key in self._refs and self._refs[key]() is state:
                self._refs.move_to_end(key)
                return key
            key = secrets.token_urlsafe(24)
            state.extra["live_key"] = key
            self._refs[key] = weakref.ref(state)
            while len(self._refs) > self.capacity:
                self._refs.popitem(last=False)
            return key

    def resolve(self, key) -> object | None:
        """The session state a key belongs to, or None (unknown, expired or malformed)."""
        if not isinstance(key, str) or not 16 <= len(key) <= 64:
            return None
        with self._lock:
            ref = self._refs.get(key)
            state = ref() if ref is not None else None
            if state is None:
                self._refs.pop(key, None)
            return state


class _Lane:
    """One visitor's previews: one computing at a time (`lock`) and at most one waiting per kind (`pending`: the
    future that the newest request of each kind resolves to tell the one before it that it was superseded)."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.pending: dict[str, asyncio.Future] = {}
        self.requests = 0

    async def turn(self, kind: str) -> bool:
        """Wait for this visitor's turn; False when a newer request of the same kind came first (nothing to do)."""
        previous = self.pending.get(kind)
        if previous is not None and not previous.done():
            previous.set_result(None)
        mine = self.pending[kind] = asyncio.get_running_loop().create_future()
        acquire = asyncio.ensure_future(self.lock.acquire())
        try:
            await asyncio.wait({acquire, mine}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the request went away while waiting
            self._abandon(acquire)
            raise
        finally:
            if self.pending.get(kind) is mine:
                del self.pending[kind]
        if not mine.done():
            return True
        self._abandon(acquire)
        return False

    def _abandon(self, acquire: asyncio.Future) -> None:
        """Stop waiting for the lock; if the wait got it anyway, hand it back."""
        acquire.cancel()
        acquire.add_done_callback(lambda done: None if done.cancelled() else self.lock.release())


Preview = Callable[[object, str, str], str]  # (session state, teacher name, text) -> the preview's HTML


class LiveRoute:
    """POST /cod/live/<kind> for each of `previews` (the app gives the Models tab's `predict` and the editor's
    `counterfactual`; passed in, so this module imports neither tab)."""

    def __init__(self, previews: dict[str, Preview], keys: LiveKeys | None = None, concurrency: int | None = None):
        self.previews = dict(previews)
        self.keys = keys or LiveKeys()
        self.concurrency = concurrency or int(os.environ.get("COD_LIVE_CONCURRENCY", "32"))
        self.max_waiting = int(os.environ.get("COD_QUEUE_SIZE", "256"))
        self._lanes: dict[str, _Lane] = {}
        self._waiting = 0
        self._limiter = None  # an anyio CapacityLimiter, made inside the server's event loop

    def routes(self) -> list:
        """The route to hand to the app (`launch(app_kwargs={"routes": ...})`)."""
        from fastapi.routing import APIRoute

        return [APIRoute("/cod/live/{kind}", self.handle, methods=["POST"], include_in_schema=False)]

    async def handle(self, kind: str, request: Request):
        """One preview: 200 {"html"} (or {"superseded": true}); 4xx/5xx {"error", "html"} with a short message."""
        from fastapi.responses import JSONResponse

        compute = self.previews.get(kind)
        if compute is None:
            return self._error(404, "No such live preview.")
        body = b""
        async for chunk in request.stream():  # read no further than the limit
            body += chunk
            if len(body) > MAX_BODY:
                return self._error(413, f"The text is over {MAX_BODY // 1024} KB: shorten it.")
        try:
            payload = json.loads(body)
            text = payload.get("text") or ""
            teacher = payload.get("teacher") or ""
            if not isinstance(text, str) or not isinstance(teacher, str):
                raise TypeError
        except (ValueError, TypeError, AttributeError):
            return self._error(400, "Send JSON: {key, text} (and teacher for predict).")
        state = self.keys.resolve(payload.get("key"))
        if state is None:
            return self._error(403, "This page's session has expired: reload the page.")
        from components.services import session_owner

        owner = session_owner(state)
        if self._waiting >= self.max_waiting:
            return self._error(429, "Too many live previews at once: try again in a moment.")
        lane = self._lanes.setdefault(owner, _Lane())
        self._waiting += 1
        lane.requests += 1
        try:
            if not await lane.turn(kind):  # a newer keystroke of this visitor came: answer that one only
                return JSONResponse({"superseded": True})
            try:
                status, html = await self._run(lambda: self._as(owner, compute, state, teacher, text))
            finally:
                lane.lock.release()
        finally:
            self._waiting -= 1
            lane.requests -= 1
            if lane.requests == 0:
                self._lanes.pop(owner, None)
        return JSONResponse({"html": html}, status_code=status)

    async def _run(self, fn: Callable[[], str]) -> tuple[int, str]:
        """(status, html) of `fn` in a worker thread, at most `concurrency` at once (first come, first served)."""
        import anyio

        from cod.errors import CodError
        from components.services import short_error
        from components.style import esc, notice

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.concurrency)
        try:
            return 200, await anyio.to_thread.run_sync(fn, limiter=self._limiter)
        except Exception as err:  # noqa: BLE001 - every error reaches the visitor as a short message, no paths
            status = 400 if isinstance(err, CodError) else 500
            return status, notice(esc(short_error(err)), "error")

    @staticmethod
    def _as(owner: str, compute: Preview, state, teacher: str, text: str) -> str:
        """`compute`'s preview, acting as the key's visitor (their store rows, their limits)."""
        from components.services import acting_as

        with acting_as(owner):
            return compute(state, teacher, text)

    @staticmethod
    def _error(status: int, message: str):
        from fastapi.responses import JSONResponse

        from components.style import esc, notice

        return JSONResponse({"error": message, "html": notice(esc(message), "error")}, status_code=status)


def fetch_js(kind: str, fields: list[str]) -> str:
    """The `js=` of a live preview's input event: POST the key and `fields` to /cod/live/<kind>; put the answer in
    the output, unless a newer keystroke was sent meanwhile (then leave it: that one's answer will)."""
    args = ", ".join(["key", *fields])
    return f"""async ({args}) => {{
  const seqs = (window.__codLive = window.__codLive || {{}});
  const seq = (seqs["{kind}"] = (seqs["{kind}"] || 0) + 1);
  const root = ((window.gradio_config && window.gradio_config.root) || "").replace(/\\/$/, "");
  try {{
    const reply = await fetch(root + "/cod/live/{kind}", {{
      method: "POST", headers: {{"Content-Type": "application/json"}}, body: JSON.stringify({{{args}}}),
    }});
    const answer = await reply.json();
    if (seq !== seqs["{kind}"] || answer.superseded) return undefined;
    return answer.html;
  }} catch (err) {{
    if (seq !== seqs["{kind}"]) return undefined;
    return '<div class="cod-notice cod-notice-error">The live preview did not answer: check your connection.</div>';
  }}
}}"""


def wire(box, output, *, key, kind: str, fields: dict, gradio_fn: Callable, gradio_inputs: list, api_name: str):
    """A live preview of `box` into `output`: typed text goes through the light route (`key` and `fields`, JSON
    name -> component); `gradio_fn` stays as the Gradio endpoint `api_name` for API clients, on a hidden trigger.
    On ZeroGPU (or without a key) typing keeps the Gradio event, which ZeroGPU needs for its GPU lease."""
    import gradio as gr

    from cod.public import zero_gpu
    from components.services import LIVE

    options = {"show_progress": "hidden", "api_name": api_name, **LIVE}
    if key is None or zero_gpu():
        return box.input(gradio_fn, gradio_inputs, output, trigger_mode="always_last", **options)
    box.input(None, [key, *fields.values()], output, js=fetch_js(kind, list(fields)), api_visibility="private")
    return gr.Button(visible=False).click(gradio_fn, gradio_inputs, output, **options)
