"""Client overhead of synth's OpenAI teacher vs the official SDK vs bare aiohttp.

One run, same loopback server (bench/fast_server.py in its own process, canned answers, never
the bottleneck), same prompts, same event loop (uvloop when installed) for every client:

- synth:   ``synth.agenerate`` with all bookkeeping on — limiter, retries, request hashes,
           SQLite cache commits, rows, traces.parquet and run.json written
- sdk:     a bare ``openai.AsyncOpenAI`` loop (max_retries=0), ``concurrency`` workers
- aiohttp: a bare ``aiohttp`` loop posting the same JSON, ``orjson`` decoding

Prints req/s, p50/p99 latency and client CPU per request, and the ratio synth/sdk.

    python bench/teacher_overhead.py                 # concurrency 1, 64, 256
    python bench/teacher_overhead.py --rate-check    # + 2-minute --rpm 600 accuracy check
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from synth import Prompt, agenerate  # noqa: E402

MODEL = "bench-model"


def prompts(n: int, tag: str) -> list[Prompt]:
    return [Prompt(id=f"{tag}-{i}", messages=[
        {"role": "user", "content": f"Question {i} ({tag}): what is {i} + {i}?"}])
        for i in range(n)]


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


async def run_synth(url: str, n: int, conc: int, out: Path, tag: str):
    t0, c0 = time.perf_counter(), cpu()
    res = await agenerate(teacher=f"openai:{MODEL}", base_url=f"{url}/v1", prompts=prompts(n, tag),
                          out=out, concurrency=conc, max_tokens=64, progress=False,
                          max_retries=2, intent="research", accept_terms=("unknown",))
    wall, used = time.perf_counter() - t0, cpu() - c0
    assert res.summary["status"]["ok"] == n, res.summary
    lat = res.table().column("latency_s").to_pylist()
    return wall, used, lat


async def run_sdk(url: str, n: int, conc: int, tag: str):
    import openai

    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0)
    work = iter(prompts(n, tag))
    lat: list[float] = []

    async def worker():
        for p in work:
            t = time.perf_counter()
            r = await client.chat.completions.create(model=MODEL, messages=p.messages,
                                                     max_tokens=64, temperature=0.0)
            assert r.choices[0].message.content
            lat.append(time.perf_counter() - t)

    t0, c0 = time.perf_counter(), cpu()
    await asyncio.gather(*(worker() for _ in range(conc)))
    wall, used = time.perf_counter() - t0, cpu() - c0
    await client.close()
    return wall, used, lat


async def run_aiohttp(url: str, n: int, conc: int, tag: str):
    import aiohttp

    work = iter(prompts(n, tag))
    lat: list[float] = []
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def worker():
            for p in work:
                t = time.perf_counter()
                body = orjson.dumps({"model": MODEL, "messages": p.messages, "max_tokens": 64,
                                     "temperature": 0.0})
                async with s.post(f"{url}/v1/chat/completions", data=body, headers=headers) as r:
                    data = orjson.loads(await r.read())
                assert data["choices"][0]["message"]["content"]
                lat.append(time.perf_counter() - t)

        t0, c0 = time.perf_counter(), cpu()
        await asyncio.gather(*(worker() for _ in range(conc)))
        wall, used = time.perf_counter() - t0, cpu() - c0
    return wall, used, lat


def start_server(script: str, *args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, script, *args], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"server did not start: {url!r}")
    return proc, url


async def overhead(args) -> None:
    proc, url = start_server(str(ROOT / "bench" / "fast_server.py"))
    try:
        print(f"server {url} (separate process); loop: {asyncio.get_running_loop().__class__.__module__}")
        print(f"{'conc':>5} {'client':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'CPU µs/req':>11}")
        with tempfile.TemporaryDirectory() as tmp:
            for conc in args.concurrency:
                n = args.requests if conc > 1 else max(500, args.requests // 5)
                # warm up each client once so connection set-up and imports are not timed
                await run_sdk(url, 50, min(conc, 50), "warm")
                await run_aiohttp(url, 50, min(conc, 50), "warm")
                await run_synth(url, 50, min(conc, 50), Path(tmp) / f"warm{conc}", "warm")
                results = {}
                for name in ("sdk", "aiohttp", "synth"):
                    tag = f"{name}{conc}"
                    if name == "synth":
                        r = await run_synth(url, n, conc, Path(tmp) / tag, tag)
                    elif name == "sdk":
                        r = await run_sdk(url, n, conc, tag)
                    else:
                        r = await run_aiohttp(url, n, conc, tag)
                    wall, used, lat = r
                    results[name] = n / wall
                    print(f"{conc:>5} {name:>8} {n / wall:>9,.0f} {pct(lat, .5):>8.2f} "
                          f"{pct(lat, .99):>8.2f} {used / n * 1e6:>11,.0f}", flush=True)
                print(f"{conc:>5} ratio synth/sdk = {results['synth'] / results['sdk']:.2f}x, "
                      f"synth/aiohttp = {results['synth'] / results['aiohttp']:.2f}x", flush=True)
    finally:
        proc.kill()


async def rate_check(seconds: float) -> None:
    """--rpm 600 against a server enforcing 600 RPM (10/s, 1 s burst): rate and 429s."""
    from tests.provider_server import ProviderServer

    rpm = 600
    n = int(rpm * seconds / 60)
    with ProviderServer(rpm=rpm) as server, tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = await agenerate(teacher=f"openai:{MODEL}", base_url=f"{server.url}/v1",
                              prompts=prompts(n, "rate"), out=Path(tmp) / "rate",
                              concurrency=32, rpm=rpm, max_tokens=16, progress=False,
                              intent="research", accept_terms=("unknown",))
        wall = time.perf_counter() - t0
        times = [r["t"] for r in server.requests]
        span = times[-1] - times[0]
        achieved = (len(times) - 1) / span * 60
        print(f"rate check: {len(times)} requests in {span:.1f}s → {achieved:.1f} RPM "
              f"(target {rpm}, error {100 * (achieved - rpm) / rpm:+.2f}%), "
              f"server 429s: {server.count_429}, ok rows: {res.summary['status']['ok']}, "
              f"wall {wall:.1f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--rate-check", action="store_true")
    ap.add_argument("--rate-seconds", type=float, default=120.0)
    ap.add_argument("--no-overhead", action="store_true")
    args = ap.parse_args()

    async def go():
        if not args.no_overhead:
            await overhead(args)
        if args.rate_check:
            await rate_check(args.rate_seconds)

    try:
        import uvloop

        uvloop.run(go())
    except ImportError:
        asyncio.run(go())


if __name__ == "__main__":
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    logging.getLogger("synth").setLevel(logging.ERROR)  # "no price known" is expected here
    main()
