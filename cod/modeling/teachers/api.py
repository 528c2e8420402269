"""A chat model behind any OpenAI-compatible endpoint as a teacher, through the real `openai` client.

Each text is one request for a one-token answer with `logprobs` and `top_logprobs` (at most 20 alternatives): a
label gets the probability of the alternatives that spell one of its words; the mass outside the alternatives is
shared by the labels that did not appear among them (reported as `shared`). A model that refuses logprobs (several
reasoning models do, with a 400 or by leaving them out) is asked for `samples` sampled answers instead, and a label's
probability is its vote share: such scores are marked `mode: votes` in the teacher's info and everything saved from
it. Requests run `concurrency` at a time with bounded retries (429 with Retry-After, 5xx, timeouts); a request and
token budget stops a run before it starts (from an estimate) or as soon as it is spent. The key comes from the
environment as for the LLM proposer and never reaches a log, a cache row or an error message.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import openai

from cod import net
from cod.counterfactuals.llm import PLACEHOLDER_KEY, _retry_after, endpoint_name, resolve_api_key
from cod.errors import ConfigError, ModelError
from cod.modeling.teachers.base import Score, ScoredTeacher
from cod.modeling.teachers.cache import ScoreCache, fingerprint_key
from cod.modeling.teachers.prompt import Prompt
from cod.public import public_mode

log = logging.getLogger(__name__)

API_PREFIX = "api:"
MODES = ("auto", "logprobs", "votes")


class BudgetExceeded(ModelError):
    """Scoring would spend (or has spent) more requests or tokens than the teacher's budget allows."""


@dataclass(frozen=True)
class APISettings:
    """How an API teacher asks: endpoint, budget, concurrency, retries, and the vote fallback."""

    base_url: str | None = None  # None: COD_LLM_BASE_URL, else OpenAI's
    mode: str = "auto"  # auto (logprobs, votes if refused) | logprobs | votes
    top_logprobs: int = 20  # alternatives per answer (OpenAI allows at most 20)
    samples: int = 5  # sampled answers per text in votes mode
    vote_temperature: float = 1.0
    vote_max_tokens: int = 8
    max_requests: int = 2000  # per teacher (process); 0: no limit
    max_tokens: int = 1_000_000  # per teacher (process); 0: no limit
    concurrency: int = 4
    timeout_s: float = 30.0
    max_retries: int = 3
    retry_delay_s: float = 1.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode {self.mode!r} is not one of {', '.join(MODES)}.")
        if not 0 <= self.top_logprobs <= 20:
            raise ConfigError(f"top_logprobs must be within [0, 20] (the API's limit), got {self.top_logprobs}.")
        for name in ("samples", "concurrency", "vote_max_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.max_requests < 0 or self.max_tokens < 0:
            raise ConfigError(
                f"Budgets are 0 (no limit) or positive, got {self.max_requests} requests, {self.max_tokens} tokens."
            )
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"base_url {self.base_url!r} must start with http:// or https:// (e.g. http://127.0.0.1:8080/v1)."
            )


def check_endpoint(base_url: str | None) -> None:
    """The one place an API teacher's endpoint is vetted before any request: in public mode a visitor's URL must be
    a public address (`cod.net.check_url`), as for the LLM proposer."""
    net.check_url(base_url or net.OPENAI_ENDPOINT)


def http_client_for(base_url: str | None, timeout_s: float):
    """None (openai's own client), or in public mode for a visitor's endpoint the guarded one, which re-checks every
    address it connects to (redirects included)."""
    guard = public_mode() and not net.is_owner_endpoint(base_url)
    return net.guarded_http_client(timeout_s) if guard else None


class _Refused(Exception):
    """The model will not give logprobs: switch to votes."""


class APITeacher(ScoredTeacher):
    """A chat model scored from its answer token's logprobs, or from sampled answers' votes (module docstring)."""

    kind = "api"

    def __init__(
        self,
        model: str,
        prompt: Prompt,
        settings: APISettings | None = None,
        api_key: str | None = None,
        calibrate: bool = False,
        cache: ScoreCache | None | bool = None,
        low_mass: float = 0.1,
    ):
        import os

        self.settings = settings or APISettings()
        base_url = self.settings.base_url or os.environ.get("COD_LLM_BASE_URL") or None
        check_endpoint(base_url)
        self.model_name = model
        self.endpoint = endpoint_name(base_url)
        super().__init__(f"{API_PREFIX}{model}", prompt, calibrate, cache, low_mass)
        self.mode = "votes" if self.settings.mode == "votes" else "logprobs"
        self.refusal = ""  # why the model fell back to votes ("" while it gives logprobs)
        self._key = resolve_api_key(api_key, base_url)  # in memory for the client only
        self._client = openai.OpenAI(
            api_key=self._key,
            base_url=base_url,
            timeout=self.settings.timeout_s,
            max_retries=0,
            http_client=http_client_for(base_url, self.settings.timeout_s),
        )
        self._spend = threading.Lock()
        self.latencies: list[float] = []  # seconds per request sent
        if self.settings.mode == "auto" and self.disk is not None:  # a refusal seen by an earlier run is remembered
            known = self.disk.get_many(self._refusal_key(), [""]).get("")
            if known:
                self.mode, self.refusal = "votes", str(known.get("refusal", "refused logprobs earlier"))

    def __repr__(self) -> str:
        return f"APITeacher(model={self.model_name!r}, endpoint={self.endpoint!r}, mode={self.mode!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def _refusal_key(self) -> str:
        return fingerprint_key(
            {"kind": self.kind, "endpoint": self.endpoint, "model": self.model_name, "refuses": "logprobs"}
        )

    def fingerprint(self) -> dict[str, Any]:
        # The mode is part of the key: votes and logprobs are different measurements of the same text.
        return {
            "kind": self.kind,
            "endpoint": self.endpoint,
            "model": self.model_name,
            "prompt": self.prompt.version,
            "mode": self.mode,
            "top_logprobs": self.settings.top_logprobs,
            "samples": self.settings.samples if self.mode == "votes" else None,
        }

    def info(self) -> dict[str, Any]:
        info = super().info()
        latency = sum(self.latencies[-50:]) / len(self.latencies[-50:]) if self.latencies else None
        info.update(
            endpoint=self.endpoint,
            model=self.model_name,
            mode=self.mode,
            refusal=self.refusal,
            samples=self.settings.samples if self.mode == "votes" else None,
            budget={"max_requests": self.settings.max_requests, "max_tokens": self.settings.max_tokens},
            mean_latency_s=None if latency is None else round(latency, 3),
        )
        return info

    # --- budget ---------------------------------------------------------------------------------------------------
    def estimate(self, texts) -> dict[str, int]:
        """What scoring `texts` would cost: texts not cached, requests and tokens (prompt words x 4/3 + answers)."""
        texts = list(dict.fromkeys(texts))
        cached = self.disk.get_many(self.cache_key, texts) if self.disk is not None else {}
        new = [t for t in texts if t not in cached and t not in self._memory]
        answer = self.settings.samples * self.settings.vote_max_tokens if self.mode == "votes" else 1
        prompt_tokens = sum(math.ceil(len(self.prompt.user_message(t).split()) * 4 / 3) + 12 for t in new)
        return {
            "texts": len(texts),
            "cached": len(texts) - len(new),
            "requests": len(new),
            "tokens": prompt_tokens + answer * len(new),
        }

    def _check_budget(self, requests: int, tokens: int, what: str) -> None:
        s = self.settings
        over_requests = s.max_requests and self.requests + requests > s.max_requests
        over_tokens = s.max_tokens and self.tokens + tokens > s.max_tokens
        if over_requests or over_tokens:
            raise BudgetExceeded(
                f"The API teacher {self.name} {what} {requests} request(s) and ~{tokens:,} tokens, but its budget "
                f"has {max(0, s.max_requests - self.requests) if s.max_requests else 'unlimited'} request(s) and "
                f"{max(0, s.max_tokens - self.tokens) if s.max_tokens else 'unlimited'} tokens left (spent "
                f"{self.requests} requests, {self.tokens:,} tokens of {s.max_requests or 'unlimited'} / "
                f"{s.max_tokens or 'unlimited'}): raise --teacher-max-requests / --teacher-max-tokens or score fewer "
                "texts. Texts already scored are cached and cost nothing next time."
            )

    # --- scoring --------------------------------------------------------------------------------------------------
    def _score(self, texts: list[str]) -> list[Score]:
        estimate = self.estimate(texts)
        self._check_budget(estimate["requests"], estimate["tokens"], f"needs, for {estimate['requests']} new text(s),")
        done: dict[str, Score] = {}
        try:
            with ThreadPoolExecutor(
                max_workers=min(self.settings.concurrency, len(texts)), thread_name_prefix="cod-teacher"
            ) as pool:
                for text, score in zip(texts, pool.map(self._score_one, texts)):
                    done[text] = score
        except BaseException:
            if self.disk is not None and done:  # what was paid for is kept
                self.disk.put_many(self.cache_key, {t: s.to_dict() for t, s in done.items()})
            raise
        return [done[t] for t in texts]

    def _score_one(self, text: str) -> Score:
        if self.mode == "logprobs":
            try:
                return self._score_logprobs(text)
            except _Refused as why:
                with self._spend:
                    if self.mode == "logprobs":
                        if self.settings.mode == "logprobs":
                            raise ModelError(
                                f"{self.name} refuses logprobs ({why}): use mode 'auto' or 'votes'."
                            ) from None
                        self.mode, self.refusal = "votes", str(why)
                        if self.disk is not None:
                            self.disk.put_many(self._refusal_key(), {"": {"refusal": self.refusal}})
                        log.warning(
                            "%s gives no logprobs (%s): scoring by %d sampled answers per text (votes).",
                            self.name,
                            why,
                            self.settings.samples,
                        )
        return self._score_votes(text)

    def _score_logprobs(self, text: str) -> Score:
        try:
            response = self._request(
                text, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=self.settings.top_logprobs
            )
        except openai.BadRequestError as err:
            message = self._safe(err)
            if "logprob" in message.lower():
                raise _Refused(message) from None
            raise ModelError(f"{self.name} rejected the request: {message}") from None
        choice = response.choices[0] if response.choices else None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if not content:
            raise _Refused("the response carried no logprobs")
        first = content[0]
        alternatives = {a.token: a.logprob for a in (first.top_logprobs or [])}
        alternatives.setdefault(first.token, first.logprob)
        raw, seen, covered = [0.0] * self.num_labels, [False] * self.num_labels, 0.0
        for token, logprob in alternatives.items():
            p = math.exp(logprob)
            covered += p
            label = self._token_label(token)
            if label is not None:
                raw[label] += p
                seen[label] = True
        shared = max(0.0, 1.0 - covered)
        return Score(raw, "logprobs", shared, {"unseen": [not s for s in seen], "alternatives": len(alternatives)})

    def _token_label(self, token: str) -> int | None:
        """The label a token spells (a whole word, or the first 3+ characters of one), when it is only one label's."""
        t = token.strip().strip("\"'*`.:").casefold()
        if not t:
            return None
        labels = {
            i
            for i, words in enumerate(self.prompt.label_words)
            for w in words
            if w.casefold() == t or (len(t) >= 3 and w.casefold().startswith(t))
        }
        return labels.pop() if len(labels) == 1 else None

    def _score_votes(self, text: str) -> Score:
        answers: list[str] = []
        for _ in range(self.settings.samples):  # a server that ignores `n` answers once per request
            wanted = self.settings.samples - len(answers)
            if wanted <= 0:
                break
            try:
                response = self._request(
                    text,
                    max_tokens=self.settings.vote_max_tokens,
                    temperature=self.settings.vote_temperature,
                    n=wanted,
                )
            except openai.BadRequestError as err:
                raise ModelError(f"{self.name} rejected the request: {self._safe(err)}") from None
            answers += [(c.message.content or "") if c.message else "" for c in response.choices][:wanted]
        votes = [0] * self.num_labels
        for answer in answers:
            label = self.prompt.label_of(answer)
            if label is not None:
                votes[label] += 1
        total = max(len(answers), 1)
        return Score([v / total for v in votes], "votes", 0.0, {"votes": votes, "answers": len(answers)})

    # --- requests -------------------------------------------------------------------------------------------------
    def _request(self, text: str, **kw):
        """One chat completion with bounded retries, counted against the budget."""
        s = self.settings
        messages = self.prompt.messages(text)
        for attempt in range(s.max_retries + 1):
            with self._spend:
                self._check_budget(1, 0, "was about to send")
                self.requests += 1
            wait = None
            start = time.monotonic()
            try:
                response = self._client.chat.completions.create(model=self.model_name, messages=messages, **kw)
                with self._spend:
                    self.latencies.append(time.monotonic() - start)
                    self.tokens += _tokens(response)
                return response
            except openai.AuthenticationError as err:
                raise ModelError(
                    f"The endpoint {self.endpoint} rejected the API key ({self._safe(err)}): check "
                    "COD_LLM_API_KEY / OPENAI_API_KEY."
                ) from None
            except openai.NotFoundError as err:
                raise ModelError(
                    f"The endpoint {self.endpoint} does not know the model {self.model_name!r} "
                    f"({self._safe(err)}): check the name after 'api:'."
                ) from None
            except openai.RateLimitError as err:
                wait = _retry_after(getattr(err.response, "headers", None))
                failure = err
            except net.URLRefused as err:  # a redirect to a private address (public mode): never retried
                raise ModelError(f"The endpoint {self.endpoint} redirected the request elsewhere: {err}") from None
            except openai.APIConnectionError as err:
                if (refusal := net.refused(err)) is not None:
                    raise ModelError(f"The endpoint {self.endpoint} cannot be used: {refusal}") from None
                failure = err
            except (openai.APITimeoutError, openai.InternalServerError) as err:
                failure = err
            except openai.APIStatusError as err:
                if err.status_code < 500:
                    raise
                failure = err
            if attempt == s.max_retries:
                raise ModelError(
                    f"The endpoint {self.endpoint} failed {attempt + 1} time(s) for {self.name}: "
                    f"{self._safe(failure)}. Try again later, or lower --teacher-concurrency."
                ) from None
            delay = min(wait, s.max_retry_after_s) if wait is not None else s.retry_delay_s * 2**attempt
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _safe(self, err: BaseException) -> str:
        """An error's message with the key masked, on one line, at most 200 characters."""
        body = getattr(err, "body", None)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            body = body["error"]
        message = str(
            (body.get("message") if isinstance(body, dict) else None) or getattr(err, "message", None) or err
        )
        if self._key and self._key != PLACEHOLDER_KEY:
            message = message.replace(self._key, "***")
        message = " ".join(message.split())
        return message if len(message) <= 200 else message[:200] + "..."


def _tokens(response) -> int:
    usage = getattr(response, "usage", None)
    if usage is None:
        return 0
    total = getattr(usage, "total_tokens", None)
    return int(total if total is not None else (usage.prompt_tokens or 0) + (usage.completion_tokens or 0))
