"""Outbound HTTP to URLs a visitor typed: which key may go there, and where "there" may be.

- `api_key_for(url, visitor_key)`: the owner's key (COD_LLM_API_KEY / OPENAI_API_KEY) goes only to the owner's
  endpoint (COD_LLM_BASE_URL, else OpenAI's); any other URL gets the visitor's own key or none.
- `check_url(url)`: in public mode a visitor's URL must resolve to public addresses only (no loopback, private,
  link-local, metadata, multicast or reserved ones) unless its host is in COD_ALLOWED_HOSTS or is the owner's endpoint.
- `guarded_http_client()` / `GuardedTransport`: an httpx client that re-checks every address it connects to (after
  DNS, on every connection, so on every redirect too) and connects to the vetted address itself (no DNS rebinding).
  API clients pass it as `http_client=` (openai) or `transport=` (httpx).
- `redact_url(url)`: a URL fit for logs (no user, password, query or fragment); httpx's INFO log lines are redacted.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import httpcore
import httpx

from cod.errors import ConfigError
from cod.public import public_mode

OPENAI_ENDPOINT = "https://api.openai.com/v1"
ALLOWED_HOSTS_ENV = "COD_ALLOWED_HOSTS"
KEY_ENVS = ("COD_LLM_API_KEY", "OPENAI_API_KEY")

# getaddrinfo-shaped: tests replace it with a stub that records what was looked up (and never connects).
Resolver = Callable[[str, int], list[str]]


class URLRefused(ConfigError):
    """A visitor's URL points at an address this public app must not reach."""


def _system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


resolve: Resolver = _system_resolve


def endpoint(url: str | None) -> str:
    """A URL as shown to people and compared: scheme, host, port and path, without credentials, query or fragment."""
    if not url:
        return OPENAI_ENDPOINT
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


def redact_url(url: str) -> str:
    """The URL without user, password, query or fragment: safe to log."""
    try:
        return endpoint(str(url)) if url else ""
    except ValueError:  # an unparseable port: say nothing of it
        return "<unparseable URL>"


def owner_endpoint() -> str:
    """The endpoint the owner's key belongs to: COD_LLM_BASE_URL, else OpenAI's."""
    return endpoint(os.environ.get("COD_LLM_BASE_URL") or None)


def owner_key() -> str | None:
    """The owner's LLM key from the environment, if any."""
    return next((os.environ[name] for name in KEY_ENVS if os.environ.get(name)), None)


def is_owner_endpoint(url: str | None) -> bool:
    """True for the owner's configured endpoint (an empty URL means it too)."""
    return not url or endpoint(url) == owner_endpoint()


def api_key_for(url: str | None, visitor_key: str | None = None) -> str | None:
    """The key to send to `url`: the visitor's when given; else the owner's, but only to the owner's endpoint."""
    if visitor_key:
        return visitor_key
    return owner_key() if is_owner_endpoint(url) else None


def allowed_hosts() -> set[str]:
    """Hosts (`host` and `host:port`) the owner lets visitors' URLs reach even when private: COD_ALLOWED_HOSTS and
    the host of COD_LLM_BASE_URL."""
    hosts = {h.strip().lower() for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()}
    own = os.environ.get("COD_LLM_BASE_URL")
    if own:
        parts = urlsplit(own)
        if parts.hostname:
            hosts.add(f"{parts.hostname.lower()}:{parts.port or _default_port(parts.scheme)}")
    return hosts


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _is_allowed(host: str, port: int, hosts: set[str]) -> bool:
    host = host.lower().strip("[]")
    return host in hosts or f"{host}:{port}" in hosts


def is_public_address(address: str) -> bool:
    """A globally routable unicast address (not loopback, private, link-local, metadata, reserved or multicast)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    return ip.is_global and not ip.is_multicast


def vetted_addresses(host: str, port: int, resolver: Resolver | None = None) -> list[str]:
    """The addresses `host` resolves to, every one public; URLRefused otherwise (nothing is connected to)."""
    host = host.strip("[]")
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = (resolver or resolve)(host, port)
        except OSError as err:
            raise URLRefused(f"The host {host!r} cannot be resolved ({err}): check the URL.") from None
    if not addresses:
        raise URLRefused(f"The host {host!r} has no address: check the URL.")
    private = [a for a in addresses if not is_public_address(a)]
    if private:
        raise URLRefused(
            f"The host {host!r} resolves to a non-public address ({private[0]}): this public app only connects to "
            f"public endpoints. Use a public URL, or run the app yourself (locally) to reach a private server; the "
            f"owner can allow a host with {ALLOWED_HOSTS_ENV}."
        )
    return addresses


def check_url(url: str, public: bool | None = None, resolver: Resolver | None = None) -> None:
    """Refuse (URLRefused) a visitor's URL that this app must not reach; locally only the form is checked."""
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise URLRefused(f"{redact_url(url)!r} is not an http(s) URL with a host: give one like https://host/v1.")
    try:
        port = parts.port or _default_port(parts.scheme)
    except ValueError:
        raise URLRefused(f"The URL {redact_url(url)!r} has an invalid port: check it.") from None
    if not (public_mode() if public is None else public) or is_owner_endpoint(url):
        return
    if _is_allowed(parts.hostname, port, allowed_hosts()):
        return
    vetted_addresses(parts.hostname, port, resolver)


class _GuardedBackend(httpcore.SyncBackend):
    """Connects only to vetted addresses: the host is resolved here, checked, and the checked address is dialled."""

    def __init__(self, hosts: set[str]) -> None:
        self._hosts = hosts

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if _is_allowed(host, port, self._hosts):
            return super().connect_tcp(host, port, timeout, local_address, socket_options)
        last: Exception | None = None
        for address in vetted_addresses(host, port):
            try:  # TLS still verifies the certificate against the URL's host name, not the address
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as err:
                last = err
        raise last or httpcore.ConnectError(f"cannot connect to {host}")


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport for visitors' URLs: every connection (redirects included) goes to a public address only."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("trust_env", False)  # an environment proxy would be dialled instead of the checked host
        super().__init__(**kwargs)
        self._pool._network_backend = _GuardedBackend(allowed_hosts())  # httpcore's pool dials through its backend


def guarded_http_client(timeout: float = 30.0) -> httpx.Client:
    """An httpx client for a visitor's URL (pass as `openai.OpenAI(http_client=...)`)."""
    return httpx.Client(transport=GuardedTransport(), timeout=timeout, follow_redirects=True, trust_env=False)


def refused(err: BaseException | None) -> URLRefused | None:
    """The URLRefused behind an exception chain (a client wraps what its transport raised), if any."""
    while err is not None:
        if isinstance(err, URLRefused):
            return err
        err = err.__cause__ or err.__context__
    return None


class _RedactURLs(logging.Filter):
    """Rewrites URL arguments of httpx's log lines ("HTTP Request: POST http://user:key@host/?q=...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactURLs())
