"""HTTP transports: the seam between a teacher's policy and the bytes on the wire.

A transport does one thing: POST bytes, return (status, headers, body bytes), and turn
network failures into :class:`~synth.errors.RetryableError`. Limits, retries, the wire
format and the cache live in the client (``synth.teachers.http``), so tests and benchmarks
can swap transports freely.

Why aiohttp and not the official SDKs' httpx stack: ``bench/teacher_overhead.py`` measures
the SDK near 1 ms of client CPU per request (≈700–1,000 req/s at best on 2 cores) and bare
httpx collapsing under concurrency, while aiohttp sustains several thousand req/s with flat
p99. A fast local server (vLLM, llama.cpp) must never wait on the client, so we speak the
SDKs' wire format and error semantics over aiohttp ourselves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Mapping, Protocol

import aiohttp

from synth.errors import RetryableError

__all__ = ["HttpResponse", "Transport", "FullTransport", "AiohttpTransport"]


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # case-insensitive mapping
    body: bytes


class Transport(Protocol):
    async def post(self, url: str, *, headers: Mapping[str, str], body: bytes,
                   timeout: float) -> HttpResponse: ...

    async def aclose(self) -> None: ...


class FullTransport(Transport, Protocol):
    """A transport for the batch routes too: any method, and a body that may be empty."""

    async def request(self, method: str, url: str, *, headers: Mapping[str, str],
                      body: bytes | None, timeout: float) -> HttpResponse: ...


class AiohttpTransport:
    """Keep-alive connection pool over aiohttp. One per teacher; created lazily in the loop."""

    def __init__(self, *, max_connections: int = 0, connect_timeout: float = 10.0):
        self._max_connections = max_connections  # 0 = unlimited; the client's semaphore bounds us
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300,
                                             enable_cleanup_closed=True)
            # No cookie jar and no auto-redirects: an API client wants neither, and skipping
            # them saves measurable per-request work.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True, skip_auto_headers=("User-Agent",))
        return self._session

    def _timeout(self, total: float) -> aiohttp.ClientTimeout:
        t = self._timeouts.get(total)
        if t is None:
            t = self._timeouts[total] = aiohttp.ClientTimeout(
                total=total, sock_connect=min(self._connect_timeout, total))
        return t

    async def post(self, url: str, *, headers: Mapping[str, str], body: bytes,
                   timeout: float) -> HttpResponse:
        return await self.request("POST", url, headers=headers, body=body, timeout=timeout)

    async def request(self, method: str, url: str, *, headers: Mapping[str, str],
                      body: bytes | None, timeout: float) -> HttpResponse:
        session = self._get_session()
        try:
            async with session.request(method, url, data=body, headers=headers,
                                       allow_redirects=False,
                                       timeout=self._timeout(timeout)) as resp:
                data = await resp.read()
                return HttpResponse(resp.status, resp.headers, data)
        except asyncio.TimeoutError as e:
            raise RetryableError(f"no answer within {timeout:g}s", reason="timeout") from e
        except aiohttp.ClientPayloadError as e:
            raise RetryableError("response body truncated", reason="truncated") from e
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                aiohttp.ClientConnectionError) as e:
            raise RetryableError(f"connection failed: {type(e).__name__}",
                                 reason="connection") from e
        except aiohttp.ClientResponseError as e:  # malformed status line / headers
            raise RetryableError(f"malformed response: {e.message}", reason="malformed") from e

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
