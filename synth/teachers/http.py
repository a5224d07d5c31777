"""The API teacher: policy (limits, retries, error semantics) around a wire format and a
transport. Providers only describe their wire format (:class:`WireFormat`); this module
decides when to send, what to retry and how long to wait.

Retry semantics follow the official SDKs: 408, 409, 429 and 5xx are retried, as are
timeouts, dropped connections and malformed or truncated bodies; ``x-should-retry`` overrides;
``retry-after-ms`` / ``retry-after`` (seconds or HTTP date) are honoured; other 4xx fail fast.
Unlike the SDKs (2 retries), the default is 5: a long generation job would rather wait than
lose rows.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import socket
import time
from dataclasses import dataclass
from typing import Mapping, Protocol
from urllib.parse import urlsplit

from synth.errors import (
    FatalRequestError,
    RateLimitedError,
    RetryableError,
    TeacherError,
    TeacherUnreachableError,
)
from synth.records import Completion, Request
from synth.teachers.limits import Limiter
from synth.teachers.transport import AiohttpTransport, Transport

__all__ = ["WireFormat", "RetryPolicy", "HttpTeacher", "Endpoint", "error_for_status",
           "public_base_url"]

log = logging.getLogger("synth")


class WireFormat(Protocol):
    """How one provider's API spells a request and an answer."""

    provider: str

    def endpoint(self, base_url: str) -> str: ...
    def headers(self, api_key: str | None) -> dict[str, str]: ...
    def encode(self, request: Request, model: str) -> bytes: ...
    def decode(self, body: bytes) -> Completion: ...  # RetryableError(reason="malformed")
    def error_message(self, body: bytes) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    max_retries: int = 5
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 120.0  # a longer hint is capped (and still waited)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after)
        base = min(self.initial_delay * 2.0 ** attempt, self.max_delay)
        return base * (1.0 - 0.25 * random.random())  # jitter as the SDKs do


def _retry_after(headers: Mapping[str, str]) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def error_for_status(status: int, headers: Mapping[str, str], message: str) -> TeacherError:
    """Map an HTTP error answer to the exception that says whether to retry."""
    text = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    should = (headers.get("x-should-retry") or "").lower()
    if status == 429:
        return RateLimitedError(text, status=status, retry_after=_retry_after(headers))
    if should == "true" or (should != "false" and (status in (408, 409) or status >= 500)):
        return RetryableError(text, status=status, reason=f"http_{status}",
                              retry_after=_retry_after(headers))
    return FatalRequestError(text, status=status, reason=f"http_{status}")


def public_base_url(url: str) -> str:
    """scheme://host[:port]/path with any user:password@ removed and no trailing slash."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/")


@dataclass(slots=True, eq=False)
class Endpoint:
    """One server of a teacher: where requests go, how busy it is, whether it is out."""

    url: str  # the request URL (may hold credentials: sent, never shown)
    name: str  # its public base URL, for rows and messages
    in_flight: int = 0
    failures: int = 0  # consecutive
    down_until: float = 0.0  # time.monotonic(); out of rotation until then

    def take_out(self) -> float:
        """Out of rotation for 1, 2, 4... up to 30 s as failures repeat."""
        self.failures += 1
        wait = min(30.0, 2.0 ** (self.failures - 1))
        self.down_until = time.monotonic() + wait
        return wait


#: Failures that say a server (not the request) is in trouble: in a fleet, it is taken out
#: and the request goes to another at once.
_SERVER_FAULTS = {"connection", "timeout", "truncated", "malformed"}


def _server_fault(err: TeacherError) -> bool:
    return err.reason in _SERVER_FAULTS or (err.status is not None and err.status >= 500)


class HttpTeacher:
    """A teacher behind an HTTP API. Holds policy; ``wire`` and ``transport`` do the rest.

    ``base_url`` may name several servers, comma-separated: a fleet serving the same model
    (vLLM, SGLang, llama.cpp replicas). Each request goes to the least-loaded server in
    rotation; one that fails (refused or dropped connection, timeout, 5xx, a malformed body)
    is taken out for a while (1 s, doubling to 30 s) and its request goes to another at
    once; limits, retries and the caller's cache are the fleet's, shared. The first URL
    names the fleet (``base_url``: what the licence check, the price table and the request
    hash see), so answers stay cached whichever server gave them."""

    def __init__(self, *, wire: WireFormat, model: str, base_url: str, api_key: str | None,
                 limiter: Limiter | None = None, retry: RetryPolicy | None = None,
                 timeout: float = 600.0, transport: Transport | None = None):
        urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
        self.provider = wire.provider
        self.model = model
        self.base_url = public_base_url(urls[0])
        self.wire = wire
        self.limiter = limiter or Limiter()
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.transport = transport or AiohttpTransport()
        self.endpoints = [Endpoint(wire.endpoint(u), public_base_url(u)) for u in urls]
        self.fleet = len(self.endpoints) > 1
        self._url = self.endpoints[0].url
        self._headers = wire.headers(api_key)
        self._secret = api_key or None
        self.raw_base_url = urls[0]  # may hold credentials: send, never show
        self.retries: dict[str, int] = {}  # retried failures by reason, for run.json
        self._auth_error: TeacherError | None = None
        self._turn = 0  # breaks ties between equally loaded servers, round robin

    @property
    def api_key(self) -> str | None:
        return self._secret

    async def _reachable(self, ep: Endpoint) -> str | None:
        """None when a TCP connection opens, else why not."""
        parts = urlsplit(ep.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10.0)
        except (OSError, asyncio.TimeoutError) as e:
            why = "timed out" if isinstance(e, asyncio.TimeoutError) else (
                e.strerror or type(e).__name__)
            if isinstance(e, socket.gaierror):
                why = f"cannot resolve {host!r}"
            return why
        writer.close()
        return None

    async def start(self) -> None:
        """Fail early, with the option named, when no server can be reached at all; in a
        fleet, servers that cannot are taken out (and tried again later)."""
        whys = await asyncio.gather(*(self._reachable(ep) for ep in self.endpoints))
        down = [(ep, why) for ep, why in zip(self.endpoints, whys) if why is not None]
        if len(down) == len(self.endpoints):
            what = "; ".join(f"{ep.name}: {why}" for ep, why in down)
            raise TeacherUnreachableError(
                f"--base-url {what if self.fleet else self.base_url}: cannot connect"
                f"{'' if self.fleet else f' ({down[0][1]})'}; is the server running and "
                "the URL right?") from None
        for ep, why in down:
            wait = ep.take_out()
            log.warning("--base-url %s: cannot connect (%s); out of rotation for %.0f s",
                        ep.name, why, wait)

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _scrub(self, err: TeacherError) -> TeacherError:
        # Servers echo keys in 401 bodies; never let one into a row, log or report.
        if self._secret and self._secret in str(err):
            err.args = (str(err).replace(self._secret, "***"),)
        return err

    async def _pick(self) -> Endpoint:
        """The least-loaded server in rotation; when all are out, the first to come back
        (after waiting for it)."""
        eps = self.endpoints
        if not self.fleet:
            return eps[0]
        now = time.monotonic()
        up = [i for i, e in enumerate(eps) if e.down_until <= now]
        if not up:
            first = min(eps, key=lambda e: e.down_until)
            await asyncio.sleep(max(0.0, first.down_until - now))
            return first
        self._turn += 1
        n = len(eps)
        return eps[min(up, key=lambda i: (eps[i].in_flight, (i - self._turn) % n))]

    async def complete(self, request: Request) -> Completion:
        if self._auth_error is not None:
            # A rejected key stays rejected: don't send the rest of the run to hear it again.
            raise FatalRequestError(f"not sent: {self._auth_error}",
                                    status=self._auth_error.status,
                                    reason=self._auth_error.reason)
        body = self.wire.encode(request, self.model)
        est = request.est_input_tokens + request.params.max_tokens
        attempt = 0
        while True:
            await self.limiter.acquire(est)
            ep = await self._pick()
            actual: int | None = None
            t0 = time.perf_counter()
            ep.in_flight += 1
            try:
                resp = await self.transport.post(ep.url, headers=self._headers, body=body,
                                                 timeout=self.timeout)
                self.limiter.observe(resp.headers)
                if resp.status == 200:
                    done = self.wire.decode(resp.body)
                    done.latency_s = time.perf_counter() - t0
                    if self.fleet:
                        done.served_by = ep.name
                        if ep.failures:
                            log.warning("--base-url %s: answering again", ep.name)
                    ep.failures = 0
                    if done.input_tokens is not None:
                        actual = done.input_tokens + (done.output_tokens or 0)
                    return done
                err: TeacherError = error_for_status(
                    resp.status, resp.headers, self.wire.error_message(resp.body))
            except RetryableError as e:
                err = e
            finally:
                ep.in_flight -= 1
                self.limiter.release(est, actual)
            if err.status in (401, 403):
                self._auth_error = self._scrub(err)
            other = False
            if self.fleet and isinstance(err, RetryableError) and _server_fault(err):
                wait = ep.take_out()
                if ep.failures == 1:
                    log.warning("--base-url %s: %s; out of rotation for %.0f s", ep.name,
                                err.reason, wait)
                other = any(e.down_until <= time.monotonic() for e in self.endpoints)
            if not isinstance(err, RetryableError) or attempt >= self.retry.max_retries:
                if attempt:
                    err.args = (f"{err} (after {attempt + 1} attempts)",)
                raise self._scrub(err)
            self.retries[err.reason] = self.retries.get(err.reason, 0) + 1
            attempt += 1
            if other:  # another server is up: no reason to wait
                continue
            delay = self.retry.delay(attempt - 1, err.retry_after)
            if isinstance(err, RateLimitedError):
                self.limiter.pause(delay)
            await asyncio.sleep(delay)
