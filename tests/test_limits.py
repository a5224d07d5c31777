import asyncio
import time

import pytest

from synth.teachers.limits import Limiter, TokenBucket, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("1s", 1.0), ("6m0s", 360.0), ("120ms", 0.12), ("1h2m3s", 3723.0), ("0.5s", 0.5),
    ("2", 2.0), ("", None), (None, None), ("soon", None), ("5x", None),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


async def test_bucket_paces_at_rate():
    b = TokenBucket(rate_per_s=50.0, capacity=1.0)
    t0 = time.monotonic()
    for _ in range(26):
        await b.acquire()
    elapsed = time.monotonic() - t0
    assert 0.45 <= elapsed < 0.8  # first token free, then 25 more at 50/s


async def test_bucket_lets_a_large_request_through_and_charges_debt():
    b = TokenBucket(rate_per_s=100.0, capacity=10.0)
    await asyncio.wait_for(b.acquire(50), 1)  # larger than capacity: still goes
    t0 = time.monotonic()
    await b.acquire(1)
    assert time.monotonic() - t0 >= 0.35  # waited off the 40-token debt


async def test_refund_corrects_estimate():
    b = TokenBucket(rate_per_s=10.0, capacity=100.0)
    await b.acquire(100)
    b.refund(100)  # actual usage was zero
    t0 = time.monotonic()
    await b.acquire(90)
    assert time.monotonic() - t0 < 0.05


async def test_concurrency_limit():
    lim = Limiter(concurrency=3)
    active = peak = 0

    async def job():
        nonlocal active, peak
        await lim.acquire(0)
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        lim.release(0, None)

    await asyncio.gather(*(job() for _ in range(20)))
    assert peak == 3


async def test_headers_pause_everyone():
    lim = Limiter(concurrency=8, rpm=6000)
    lim.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "200ms"})
    t0 = time.monotonic()
    await lim.acquire(1)
    assert time.monotonic() - t0 >= 0.18
    lim.release(1, 1)
    lim.observe({"anthropic-ratelimit-requests-remaining": "5"})  # not exhausted: no pause
    t0 = time.monotonic()
    await lim.acquire(1)
    assert time.monotonic() - t0 < 0.05
