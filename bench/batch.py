"""Provider batch APIs end to end: ``synth generate --batch`` against the synchronous route,
on the same prompts, through the loopback server's batch routes (tests/batch_routes.py).

For each provider: N prompts (default 10,000), 10% of whose items fail the first time a
batch answers them, and the first batch expires after answering 70% of its items. Both runs
are the whole command (``python -m synth generate``, start-up to run.json), each in its own
process, against one server in this process. Printed: rows answered, items the server
billed and how many of them were paid twice, batches created, wall time, and the cost of
the batch run against the synchronous run of the same rows (the shipped table's batch
fraction is 0.5, so 0.500 is the target).

    python bench/batch.py [--n 10000] [--providers openai,anthropic]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.provider_server import ProviderServer  # noqa: E402

PRICES = """models:
  - {provider: openai, match: gpt-test, input: 1.0, output: 2.0, batch: 0.5}
  - {provider: anthropic, match: claude-test, input: 3.0, output: 15.0, batch: 0.5}
"""
SPEC = {"openai": ("openai:gpt-test", "/v1", "batches"),
        "anthropic": ("anthropic:claude-test", "", "message_batches")}


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--providers", default="openai,anthropic")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="synth-batch-bench-"))
    src = tmp / "prompts.jsonl"
    with src.open("w") as f:
        for i in range(args.n):
            fail = " [[batch:error*1]]" if i % 10 == 7 else ""
            f.write(json.dumps({"id": f"q{i}", "prompt": f"Explain item {i} briefly.{fail}"})
                    + "\n")
    prices = tmp / "prices.yaml"
    prices.write_text(PRICES)
    print(f"{args.n:,} prompts, 10% fail once inside a batch, the first batch expires "
          "after 70% of its items")
    print("| provider | route | rows ok | billed | paid twice | batches | wall s | cost USD |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    with ProviderServer() as server:
        for provider in args.providers.split(","):
            teacher, suffix, store_name = SPEC[provider]
            base = ["-t", teacher, "--base-url", server.url + suffix, "--intent", "research",
                    "--accept-terms", "unknown", "--accept-terms", "anthropic-api",
                    "--price-file", str(prices), "--no-progress", "--max-tokens", "64"]
            out_sync, out_batch = tmp / f"{provider}-sync", tmp / f"{provider}-batch"
            server.reset()
            wall_sync = run([sys.executable, "-m", "synth", "generate", str(src), "-o",
                             str(out_sync), "--concurrency", "64", *base])
            sync = json.loads((out_sync / "run.json").read_text())
            server.reset()
            store = getattr(server, store_name)
            store.expire_next, store.expire_after = True, int(args.n * 0.7)
            wall_batch = run([sys.executable, "-m", "synth", "generate", str(src), "-o",
                              str(out_batch), "--batch", "--poll-interval", "0.05", *base])
            batch = json.loads((out_batch / "run.json").read_text())
            unique = batch["rows"]
            print(f"| {provider} | synchronous | {sync['status']['ok']:,} | - | - | - | "
                  f"{wall_sync:.1f} | {sync['cost_usd']:.4f} |")
            print(f"| {provider} | batch | {batch['status']['ok']:,} | {store.billed:,} | "
                  f"{store.billed - unique:,} | {store.created} | {wall_batch:.1f} | "
                  f"{batch['cost_usd']:.4f} |")
            ratio = batch["cost_usd"] / sync["cost_usd"]
            print(f"|  | **batch / synchronous cost** | | | | | | **{ratio:.3f}** |")
            print(f"   item failures recorded: {batch['batch']['item_failures']}",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
