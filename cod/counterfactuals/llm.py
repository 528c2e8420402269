"""Counterfactuals from any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp's server, TGI).

For each example the LLM is asked for several minimal rewrites towards a target class; every rewrite is scored by
the teacher; while none flips, the teacher's verdict goes back to the LLM as feedback, up to `config.rounds`
requests. The flipping rewrite with the fewest words changed is kept (ties: the highest target probability).
Transient endpoint failures (429, 5xx, timeouts, refused connections) are retried with bounded backoff; what
still fails becomes that example's `error` and the batch goes on. A rejected key or an unknown model stops the
batch at once with a `ProposerError`, since every other example would fail the same way.
Every reply is cached on disk, so a re-run costs no tokens and an interrupted run resumes where it stopped.
The model `demo-llm` (or `local:PATH`) with no base URL runs on this machine instead (`local_llm.LocalChat`): the same
prompts, parser, feedback and cache, no endpoint and no key. Every counterfactual gets its `fluency` (`fluency.py`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai

from cod import net
from cod.config import LLMConfig
from cod.counterfactuals import edits as E
from cod.counterfactuals import prompts as P
from cod.counterfactuals.base import Counterfactual, Progress, default_target, resolve_targets
from cod.counterfactuals.cache import DiskCache, canonical
from cod.counterfactuals.local_llm import LOCAL_PREFIX, LocalChat
from cod.errors import CodError, ConfigError, ProposerError
from cod.public import public_mode

if TYPE_CHECKING:  # pragma: no cover
    from cod.data.readers import Example
    from cod.modeling.scoring import Teacher

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = net.OPENAI_ENDPOINT
PLACEHOLDER_KEY = "not-needed"  # local servers ignore the key, but the client insists on one
_CACHE_FORMAT = 1  # bump when the cached value's shape changes


def resolve_api_key(api_key: str | None = None, base_url: str | None = None) -> str:
    """The key to send: the argument; else the owner's (COD_LLM_API_KEY, else OPENAI_API_KEY), but only to the owner's
    endpoint (COD_LLM_BASE_URL, else OpenAI's); else a placeholder for a local server that wants none."""
    key = net.api_key_for(base_url, api_key)
    if key:
        return key
    if base_url:
        return PLACEHOLDER_KEY
    raise ProposerError(
        "No API key for the OpenAI API: set COD_LLM_API_KEY or OPENAI_API_KEY, or point --llm-base-url "
        "(COD_LLM_BASE_URL) at a local OpenAI-compatible server such as llama.cpp, vLLM or Ollama."
    )


def endpoint_name(base_url: str | None) -> str:
    """The endpoint as shown to users and put in cache keys: no credentials, query or fragment."""
    return net.endpoint(base_url)


class _RequestFailed(Exception):
    """One request failed for good (after its retries): the example gets the message as its error."""


class _Stopped(Exception):
    """The caller asked to stop while a request was waiting to be retried."""


@dataclass
class _Reply:
    content: str
    tokens: int  # spent now: 0 for a cached reply
    cached: bool


class LLMProposer:
    """Proposes counterfactuals with an OpenAI-compatible LLM; the teacher verifies every candidate."""

    name = "llm"

    def __init__(
        self, config: LLMConfig | None = None, api_key: str | None = None, cache_dir: Path | str | None | bool = None
    ):
        """`cache_dir` None: `$COD_HOME/cache/llm`; False: no disk cache (every run asks the endpoint again)."""
        from cod.paths import cache_dir as default_cache_dir

        self.config = config or LLMConfig()
        # An empty base URL means the owner's endpoint (COD_LLM_BASE_URL), never silently OpenAI's.
        base_url = self.config.base_url or os.environ.get("COD_LLM_BASE_URL") or None
        self._public = public_mode()
        self._local = local_chat(self.config, base_url)  # None: an endpoint
        if self._local is not None:
            self.endpoint, self._key = f"{LOCAL_PREFIX}{self._local.name}", ""
        else:
            self.endpoint = endpoint_name(base_url)
            net.check_url(base_url or DEFAULT_ENDPOINT)  # public mode: a visitor's URL must be a public address
            self._key = resolve_api_key(api_key, base_url)  # kept in memory for the client only
        if cache_dir is False:
            self.cache: DiskCache | None = None
        else:
            self.cache = DiskCache(default_cache_dir("llm") if cache_dir in (None, True) else cache_dir)
        self._client = None if self._local is not None else self._make_client(base_url)

    def _make_client(self, base_url: str | None) -> openai.OpenAI:
        """The HTTP client of an endpoint."""
        # A visitor's endpoint is dialled through the guarded transport (re-checked on every connection and redirect).
        guard = self._public and not net.is_owner_endpoint(base_url)
        http_client = net.guarded_http_client(self.config.timeout_s) if guard else None
        # Retries are ours (bounded, interruptible, with a per-example error), so the client's own are off.
        return openai.OpenAI(
            api_key=self._key, base_url=base_url, timeout=self.config.timeout_s, max_retries=0, http_client=http_client
        )

    def __repr__(self) -> str:
        return f"LLMProposer(model={self.config.model!r}, endpoint={self.endpoint!r}, cache={self.cache!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        if self._client is not None:
            self._client.close()

    # --- the batch ---------------------------------------------------------------------------------------------

    def propose(
        self,
        examples: Sequence[Example | str],
        teacher: Teacher,
        target: Sequence[int | str | None] | int | str | None = None,
        n: int | None = None,
        on_progress: Progress | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> list[Counterfactual]:
        """One counterfactual per example, in order; `n` rewrites per request (default `config.candidates`).

        `target` is a class index or name for all examples, one per example, or None (binary: the other class;
        multi-class: the teacher's runner-up). Examples not started when `stop()` turns true carry an error.
        """
        n = self.config.candidates if n is None else n
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"n (rewrites per request) must be a positive integer, got {n!r}.")
        names = list(teacher.label_names)
        texts = [e if isinstance(e, str) else e.text for e in examples]
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"Example {i} has no text ({text!r}): drop empty rows before proposing.")
        if not texts:
            return []
        probs = teacher.predict_proba(texts)  # (n_examples, num_labels), one batched pass
        targets = self._targets(target, probs, names)
        labels = [int(p.argmax()) if isinstance(e, str) else int(e.label) for e, p in zip(examples, probs)]
        asked_to_stop = stop or (lambda: False)
        abort = threading.Event()  # set when a fatal error (bad key, unknown model) ends the batch

        def stop() -> bool:
            return abort.is_set() or bool(asked_to_stop())

        results: list[Counterfactual | None] = [None] * len(texts)
        fatal: list[BaseException] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            try:
                if stop():
                    reason = "Stopped before this example was proposed."
                    cf = self._empty(texts[i], labels[i], probs[i], targets[i], reason, stopped=True)
                else:
                    cf = self._propose_one(texts[i], labels[i], probs[i].tolist(), targets[i], n, names, teacher, stop)
            except BaseException as err:  # a bad key, an unknown model, or a bug: stop starting new examples
                abort.set()
                fatal.append(err)
                cf = self._empty(texts[i], labels[i], probs[i], targets[i], str(err))
            # Progress is counted in the worker, before it takes the next example, so `stop()` (checked at the
            # start of each example) sees every example finished so far.
            with lock:
                results[i] = cf
                finished = sum(r is not None for r in results)
                if on_progress is not None:
                    on_progress(finished, len(texts))

        with ThreadPoolExecutor(
            max_workers=min(self.config.concurrency, len(texts)), thread_name_prefix="cod-llm"
        ) as pool:
            for future in [pool.submit(work, i) for i in range(len(texts))]:
                future.result()
        if fatal:
            raise fatal[0]
        return _with_fluency([r for r in results if r is not None], names)

    def _targets(self, target, probs, names: list[str]) -> list[int]:
        """One target class per example (see `propose`): given, else the default (the teacher's runner-up)."""
        chosen = resolve_targets(target, len(probs), names)
        return [default_target(p.tolist()) if t is None else t for t, p in zip(chosen, probs)]

    # --- one example -------------------------------------------------------------------------------------------

    def _propose_one(self, text, label, probs, target, n, names, teacher, stop) -> Counterfactual:
        start = time.monotonic()
        source = max(range(len(probs)), key=probs.__getitem__)
        template = P.choose_template(self.config.task, names)
        version = P.VERSIONS[template]
        if source == target:
            return self._empty(
                text,
                label,
                probs,
                target,
                f"The teacher already puts this text in {names[target]!r}, the target: choose another target class.",
                version=version,
            )
        local = self._local is not None
        if local:  # one plain-text rewrite per request, after worked examples (prompts.py, small local models)
            messages = P.build_local_messages(template, text, names, source, target)
            version, n, limit = f"{version}-{P.LOCAL_VERSION}", 1, self._local.reply_tokens(text)
        else:
            messages, limit = (
                P.build_messages(template, text, names, source, target, n, self.config.task_description),
                None,
            )
        scored: dict[str, list[float]] = {}  # candidate -> teacher probs, in the order proposed
        problems: list[str] = []
        failure, tokens, requests, cached, rounds = "", 0, 0, 0, 0
        for round_ in range(self.config.rounds):
            key = self._cache_key(text, names[target], version, n, round_, messages)
            try:
                reply = self._ask(key, messages, stop, limit)
            except (_RequestFailed, _Stopped) as err:
                failure = str(err)
                break
            rounds += 1
            tokens += reply.tokens
            cached += reply.cached
            requests += not reply.cached
            content = _first_line(reply.content) if local else reply.content  # small models ramble on after it
            parsed = P.parse_candidates(content, text)
            new = [c for c in parsed.candidates if c not in scored][: 2 * n]
            if new:
                for c, p in zip(new, teacher.predict_proba(new).tolist()):  # (len(new), num_labels)
                    scored[c] = p
            else:
                problems.append(parsed.problem or "every rewrite had been tried already")
            if any(_argmax(scored[c]) == target for c in new):
                break
            # Feedback shows the teacher's verdict on this reply's rewrites (repeats included: the LLM should see
            # that they were checked already); with no rewrite at all it says what was wrong with the reply.
            shown = new or [c for c in parsed.candidates if c in scored][: 2 * n]
            if local:
                turn = P.local_feedback(scored[shown[0]] if shown else None, names, target, template)
            else:
                turn = P.feedback_message([(c, scored[c]) for c in shown], names, target, n, parsed.problem)
            messages = messages + [{"role": "assistant", "content": content}, turn]
        extra: dict[str, Any] = {
            "rounds": rounds,
            "requests": requests,
            "cached_replies": cached,
            "candidates": [
                {
                    "text": c,
                    "target_prob": round(p[target], 4),
                    "flipped": _argmax(p) == target,
                    "words_changed": E.words_changed(E.diff(text, c)),
                }
                for c, p in scored.items()
            ],
        }
        if problems:
            extra["problems"] = problems
        common = dict(
            proposer=self.name,
            model=self.config.model,
            prompt_version=version,
            attempts=len(scored),
            latency_s=time.monotonic() - start,
            tokens=tokens,
            extra=extra,
        )
        if not scored:
            error = failure or f"No usable rewrite from the model in {rounds} round(s): {'; '.join(problems)}."
            return Counterfactual(text, label, probs, "", target, [], error=error, **common)
        flips = [c for c in scored if _argmax(scored[c]) == target]
        if flips:
            best = min(flips, key=lambda c: (_words_changed(text, c), -scored[c][target]))
            error = ""
        else:
            best = max(scored, key=lambda c: (scored[c][target], -_words_changed(text, c)))
            error = (
                f"None of the {len(scored)} rewrites flipped the teacher to {names[target]!r} in {rounds} round(s); "
                f"kept the closest ({names[target]} {scored[best][target]:.2f})."
            )
            if failure:
                error += f" Then: {failure}"
        return Counterfactual(text, label, probs, best, target, scored[best], error=error, **common)

    def _empty(
        self, text, label, probs, target, error: str, stopped: bool = False, version: str = ""
    ) -> Counterfactual:
        """A record for an example with no candidate at all."""
        return Counterfactual(
            text,
            label,
            [float(p) for p in probs],
            "",
            target,
            [],
            proposer=self.name,
            model=self.config.model,
            prompt_version=version,
            error=error,
            extra={"stopped": True} if stopped else {},
        )

    # --- requests ----------------------------------------------------------------------------------------------

    def _cache_key(self, text: str, target: str, version: str, n: int, round_: int, messages) -> dict[str, Any]:
        """What determines a reply: text, target, model, prompt version, settings and the conversation so far."""
        return {
            "format": _CACHE_FORMAT,
            "proposer": self.name,
            "endpoint": self.endpoint,
            "model": self.config.model,
            "prompt_version": version,
            "text": text,
            "target": target,
            "round": round_,
            "candidates": n,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "messages_sha256": hashlib.sha256(canonical({"m": messages}).encode()).hexdigest(),
        }

    def _ask(self, key: dict[str, Any], messages: list[dict[str, str]], stop, limit: int | None = None) -> _Reply:
        """The reply to `messages`: from the disk cache, else from the endpoint (then cached); `limit`: a local
        model's new tokens at most."""
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None and isinstance(hit.get("content"), str):
                return _Reply(hit["content"], 0, True)
        content, tokens = self._local.complete(messages, limit) if self._local else self._request(messages, stop)
        if self.cache is not None:
            self.cache.put(key, {"content": content, "tokens": tokens})
        return _Reply(content, tokens, False)

    def _request(self, messages: list[dict[str, str]], stop) -> tuple[str, int]:
        """One chat completion with bounded retries; returns (content, tokens used)."""
        cfg = self.config
        for attempt in range(cfg.max_retries + 1):
            wait = None  # None: backoff; a number: what the server asked for
            try:
                response = self._client.chat.completions.create(
                    model=cfg.model, messages=messages, temperature=cfg.temperature, max_tokens=cfg.max_tokens
                )
                return _content(response), _tokens(response)
            except openai.AuthenticationError as err:
                raise ProposerError(
                    f"The endpoint {self.endpoint} rejected the API key (HTTP 401: {self._say(err)}): set "
                    f"COD_LLM_API_KEY or OPENAI_API_KEY to a valid key."
                ) from None
            except openai.PermissionDeniedError as err:
                raise ProposerError(
                    f"The endpoint {self.endpoint} refused access to model {cfg.model!r} "
                    f"(HTTP 403: {self._say(err)}): "
                    f"use a key with access to it or another --llm-model."
                ) from None
            except openai.NotFoundError as err:
                raise ProposerError(
                    f"The endpoint {self.endpoint} has no model {cfg.model!r} or no chat-completions route (HTTP 404: "
                    f"{self._say(err)}): check --llm-model and --llm-base-url (it usually ends in /v1)."
                ) from None
            except openai.RateLimitError as err:
                reason = f"rate limited (HTTP 429: {self._say(err)})"
                wait = _retry_after(err.response.headers)
            except openai.APIStatusError as err:
                reason = f"HTTP {err.status_code}: {self._say(err)}"
                if err.status_code < 500 and err.status_code not in (408, 409):
                    raise _RequestFailed(f"The endpoint {self.endpoint} rejected the request ({reason}).") from None
            except openai.APITimeoutError:
                reason = f"no answer within {cfg.timeout_s:g} s (timeout_s)"
            except net.URLRefused as err:  # a redirect to a private address (public mode): never retried
                raise ProposerError(f"The endpoint {self.endpoint} redirected the request elsewhere: {err}") from None
            except openai.APIConnectionError as err:
                if (refusal := net.refused(err)) is not None:
                    raise ProposerError(f"The endpoint {self.endpoint} cannot be used: {refusal}") from None
                reason = f"cannot connect ({self._say(err)})"
            except (openai.OpenAIError, ValueError) as err:  # e.g. a 200 whose body is not JSON
                reason = f"an unreadable response ({type(err).__name__}: {self._say(err)})"
            if attempt == cfg.max_retries:
                break
            backoff = min(cfg.retry_delay_s * 2**attempt, 30.0) * (1 - 0.25 * random.random())
            delay = backoff if wait is None else min(wait, cfg.max_retry_after_s)
            log.info("LLM request failed (%s); retry %d of %d in %.2f s", reason, attempt + 1, cfg.max_retries, delay)
            if not self._sleep(delay, stop):
                raise _Stopped(f"Stopped while waiting to retry the endpoint ({reason}).")
        tries = cfg.max_retries + 1
        raise _RequestFailed(f"The endpoint {self.endpoint} failed {tries} time(s): {reason}.")

    def _sleep(self, seconds: float, stop) -> bool:
        """Sleep up to `seconds`, waking early (False) when the caller stops or the batch aborts."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if stop():
                return False
            time.sleep(min(left, 0.05))
        return not stop()

    def _say(self, err: Exception) -> str:
        """An error's message, short, without the key (some servers echo it back); in public mode only the HTTP
        status's standard phrase or the error's kind, never the remote body."""
        if self._public:
            status = getattr(err, "status_code", None)
            try:
                return HTTPStatus(status).phrase if status else type(err).__name__
            except ValueError:
                return f"status {int(status)}"
        body = getattr(err, "body", None)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):  # {"error": {"message": ...}}
            body = body["error"]
        message = body.get("message") if isinstance(body, dict) else None
        message = str(message or getattr(err, "message", None) or err or type(err).__name__)
        if self._key and self._key != PLACEHOLDER_KEY:
            message = message.replace(self._key, "***")
        message = " ".join(message.split())
        return message if len(message) <= 200 else message[:200] + "..."


def default_model(base_url: str | None = None, api_key: str | None = None) -> str:
    """The model when none is named: the configured one (COD_LLM_MODEL) when an endpoint or a key is at hand, else
    the embedded LLM on this machine (`demo-llm`), so the LLM proposer works with no endpoint at all."""
    from cod.modeling.demo.llm import DEMO_LLM

    try:
        resolve_api_key(api_key, base_url)
    except ProposerError:
        return DEMO_LLM
    return LLMConfig().model


def local_chat(config: LLMConfig, base_url: str | None = None) -> LocalChat | None:
    """The local model the config names ('demo-llm' or 'local:PATH', with no base URL), or None for an endpoint."""
    from cod.modeling.demo.llm import DEMO_LLM, is_embedded_llm

    if base_url or config.base_url or not (is_embedded_llm(config.model) or config.model.startswith(LOCAL_PREFIX)):
        return None
    name = config.model.removeprefix(LOCAL_PREFIX)
    if name != DEMO_LLM and public_mode():
        raise ProposerError(f"Local model {name!r}: a public Space runs only the embedded demo-llm on its machine.")
    # A JSON list of a few rewrites of one sentence fits in far fewer tokens than an API's max_tokens allows.
    return LocalChat(name, config.temperature, min(config.max_tokens, 160), max_batch=config.concurrency)


def _with_fluency(cfs: list[Counterfactual], label_names: Sequence[str]) -> list[Counterfactual]:
    """The counterfactuals with their fluency scored (left None, and logged, when the fluency LM is missing)."""
    from cod.counterfactuals.fluency import add_fluency

    try:
        return add_fluency(cfs, label_names=label_names)
    except CodError as err:
        log.warning("Counterfactuals left without fluency scores: %s", err)
        return cfs


def _first_line(reply: str) -> str:
    """The first non-empty line of a reply."""
    return next((line for line in (reply or "").splitlines() if line.strip()), "")


def _argmax(probs: Sequence[float]) -> int:
    return max(range(len(probs)), key=probs.__getitem__)


def _words_changed(text: str, candidate: str) -> int:
    """Words changed between a text and a candidate rewrite."""
    return E.words_changed(E.diff(text, candidate))


def _content(response) -> str:
    choices = getattr(response, "choices", None) or []
    if not choices:
        return ""
    message = choices[0].message
    if message is None:
        return ""
    # OpenAI puts a refusal in its own field; the parser recognises its wording ("I'm sorry, ...").
    return getattr(message, "content", None) or getattr(message, "refusal", None) or ""


def _tokens(response) -> int:
    usage = getattr(response, "usage", None)
    if usage is None:
        return 0
    total = getattr(usage, "total_tokens", None)
    return int(total if total is not None else (usage.prompt_tokens or 0) + (usage.completion_tokens or 0))


def _retry_after(headers) -> float | None:
    """Seconds a 429 asks us to wait (retry-after-ms, retry-after in seconds or as an HTTP date), or None."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError, IndexError):
                continue
        if seconds == seconds and seconds >= 0:  # not NaN
            return seconds
    return None
