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

__all__ = ["WireFormat", "RetryPolicy", "HttpTeacher", "error_for_status", "public_base_url"]


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


class HttpTeacher:
    """A teacher behind an HTTP API. Holds policy; ``wire`` and ``transport`` do the rest."""

    def __init__(self, *, wire: WireFormat, model: str, base_url: str, api_key: str | None,
                 limiter: Limiter | None = None, retry: RetryPolicy | None = None,
                 timeout: float = 600.0, transport: Transport | None = None):
        self.provider = wire.provider
        self.model = model
        self.base_url = public_base_url(base_url)
        self.wire = wire
        self.limiter = limiter or Limiter()
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.transport = transport or AiohttpTransport()
        self._url = wire.endpoint(base_url.rstrip("/"))
        self._headers = wire.headers(api_key)
        self._secret = api_key or None
        self.raw_base_url = base_url.rstrip("/")  # may hold credentials: send, never show
        self.retries: dict[str, int] = {}  # retried failures by reason, for run.json
        self._auth_error: TeacherError | None = None

    @property
    def api_key(self) -> str | None:
        return self._secret

    async def start(self) -> None:
        """Fail early, with the option named, when the endpoint cannot be reached at all."""
        parts = urlsplit(self._url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10.0)
        except (OSError, asyncio.TimeoutError) as e:
            why = "timed out" if isinstance(e, asyncio.TimeoutError) else (
                e.strerror or type(e).__name__)
            if isinstance(e, socket.gaierror):
                why = f"cannot resolve {host!r}"
            raise TeacherUnreachableError(
                f"--base-url {self.base_url}: cannot connect ({why}); is the server running "
                "and the URL right?") from None
        writer.close()

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _scrub(self, err: TeacherError) -> TeacherError:
        # Servers echo keys in 401 bodies; never let one into a row, log or report.
        if self._secret and self._secret in str(err):
            err.args = (str(err).replace(self._secret, "***"),)
        return err

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
            actual: int | None = None
            t0 = time.perf_counter()
            try:
                resp = await self.transport.post(self._url, headers=self._headers, body=body,
                                                 timeout=self.timeout)
                self.limiter.observe(resp.headers)
                if resp.status == 200:
                    done = self.wire.decode(resp.body)
                    done.latency_s = time.perf_counter() - t0
                    if done.input_tokens is not None:
                        actual = done.input_tokens + (done.output_tokens or 0)
                    return done
                err: TeacherError = error_for_status(
                    resp.status, resp.headers, self.wire.error_message(resp.body))
            except RetryableError as e:
                err = e
            finally:
                self.limiter.release(est, actual)
            if err.status in (401, 403):
                self._auth_error = self._scrub(err)
            if not isinstance(err, RetryableError) or attempt >= self.retry.max_retries:
                if attempt:
                    err.args = (f"{err} (after {attempt + 1} attempts)",)
                raise self._scrub(err)
            self.retries[err.reason] = self.retries.get(err.reason, 0) + 1
            delay = self.retry.delay(attempt, err.retry_after)
            if isinstance(err, RateLimitedError):
                self.limiter.pause(delay)
            attempt += 1
            await asyncio.sleep(delay)
