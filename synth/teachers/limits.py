"""Client-side rate limits: concurrency, requests/min, tokens/min, and the server's word.

Providers enforce per-minute limits over short windows (OpenAI documents that 600 RPM may be
enforced as 10 requests per second), so the buckets refill continuously and allow only a
small burst (:data:`BURST_S` seconds' worth): a client that bursts a full minute's quota at
once collects 429s. The TPM bucket charges a request's *estimated* tokens (prompt estimate +
``max_tokens``) before sending and is corrected with the usage the API reports afterwards.
The server's rate-limit headers and ``retry-after`` pause every request, not just the one
that was told, because they describe the account, not the request.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from datetime import datetime
from typing import Mapping

__all__ = ["TokenBucket", "Limiter", "parse_duration", "BURST_S"]

BURST_S = 0.1  # burst allowance of the client buckets, in seconds of rate
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str | None) -> float | None:
    """Seconds in an OpenAI reset header ("1s", "6m0s", "120ms", "0.5s") or a bare number."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    total, pos = 0.0, 0
    for m in _DURATION.finditer(value):
        if m.start() != pos:
            return None
        n = float(m.group(1))
        total += n * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2)]
        pos = m.end()
    return total if pos == len(value) and pos > 0 else None


def _parse_reset_timestamp(value: str | None) -> float | None:
    """Seconds from now until an RFC 3339 timestamp (Anthropic's ``*-reset`` headers)."""
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, ts.timestamp() - time.time())


class TokenBucket:
    """A continuously refilled bucket; waiters are served first come, first served.

    ``acquire(n)`` may take the level below zero when ``n`` exceeds the capacity (one large
    request must still be able to go); later acquirers then wait the debt off.
    """

    def __init__(self, rate_per_s: float, capacity: float):
        if rate_per_s <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate_per_s
        self.capacity = max(1.0, capacity)
        self._level = self.capacity
        self._t = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._level = min(self.capacity, self._level + (now - self._t) * self.rate)
        self._t = now

    async def acquire(self, n: float = 1.0) -> None:
        async with self._lock:  # FIFO: asyncio.Lock wakes waiters in order
            need = min(n, self.capacity)
            while True:
                self._refill()
                if self._level >= need:
                    self._level -= n
                    return
                await asyncio.sleep((need - self._level) / self.rate)

    def refund(self, n: float) -> None:
        """Give back (or, if negative, take more) tokens after the real cost is known."""
        self._refill()
        self._level = min(self.capacity, self._level + n)

    def drain(self) -> None:
        """The server says we have nothing left: start again from empty."""
        self._refill()
        self._level = min(self._level, 0.0)


class Limiter:
    """Everything that decides *when* a request may be sent."""

    def __init__(self, *, concurrency: int = 64, rpm: float | None = None,
                 tpm: float | None = None):
        self.concurrency = concurrency
        self._sem = asyncio.Semaphore(concurrency)
        self.rpm = TokenBucket(rpm / 60.0, rpm / 60.0 * BURST_S) if rpm else None
        self.tpm = TokenBucket(tpm / 60.0, tpm / 60.0 * BURST_S) if tpm else None
        self._paused_until = 0.0
        self.pauses = 0  # how often the server told us to wait (for run.json)

    def pause(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` (a 429's retry-after, a zero remaining)."""
        until = time.monotonic() + seconds
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1

    async def _wait_pause(self) -> None:
        while (delay := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(delay)

    async def acquire(self, est_tokens: int) -> None:
        """Wait for a concurrency slot, then for the buckets. Pair with :meth:`release`."""
        await self._sem.acquire()
        try:
            await self._wait_pause()
            if self.rpm is not None:
                await self.rpm.acquire(1)
            if self.tpm is not None:
                await self.tpm.acquire(est_tokens)
            await self._wait_pause()
        except BaseException:
            self._sem.release()
            raise

    def release(self, est_tokens: int, actual_tokens: int | None) -> None:
        self._sem.release()
        if self.tpm is not None and actual_tokens is not None:
            self.tpm.refund(est_tokens - actual_tokens)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Adopt the provider's rate-limit headers (OpenAI ``x-ratelimit-*``, Anthropic
        ``anthropic-ratelimit-*``): when a budget is exhausted, wait for its reset."""
        for kind in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            if remaining is not None:
                if _is_zero(remaining):
                    reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
                    self._exhausted(kind, reset)
                continue
            remaining = headers.get(f"anthropic-ratelimit-{kind}-remaining")
            if remaining is not None and _is_zero(remaining):
                reset = _parse_reset_timestamp(headers.get(f"anthropic-ratelimit-{kind}-reset"))
                self._exhausted(kind, reset)

    def _exhausted(self, kind: str, reset: float | None) -> None:
        bucket = self.rpm if kind == "requests" else self.tpm
        if bucket is not None:
            bucket.drain()
        if reset is not None and math.isfinite(reset):
            self.pause(min(reset, 120.0))


def _is_zero(value: str) -> bool:
    try:
        return float(value) <= 0
    except ValueError:
        return False
