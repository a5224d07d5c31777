"""Provider fine-tuning end to end: ``synth train --backend openai`` on the loopback server's
OpenAI fine-tuning routes (tests/finetune_routes.py), as a user runs it.

N prompts (default 2,000) are answered by ``synth generate`` (teacher ``openai:gpt-test``
on the server), then ``synth train --backend openai`` (the whole command, in its own
process) is run twice on those rows:

* clean: upload, create, poll to ``succeeded``;
* drill: the process is SIGKILLed while the job runs (its third poll), then the same
  command is run again and must attach to the job it made.

Printed per run: wall time, jobs and uploads the server holds for the run, the event lines
printed (and whether any was printed twice across the killed run and its rerun), the tuned
model's id and trained tokens, and whether the API key reached any file.

    python bench/finetune.py [--n 2000] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.provider_server import ProviderServer  # noqa: E402

KEY = "sk-bench-finetune-key-0123456789"
POLL = re.compile(r"/v1/fine_tuning/jobs/[^/]+")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=20, help="poll reads a job spends running")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="synth-ft-bench-"))
    src = tmp / "prompts.jsonl"
    src.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Explain item {i}."}) + "\n"
                           for i in range(a.n)))
    env = {**os.environ, "SYNTH_BENCH_KEY": KEY}
    with ProviderServer() as server:
        server.require_key = KEY
        server.fine_tuning.steps = a.steps
        url = f"{server.url}/v1"
        p = subprocess.run([sys.executable, "-m", "synth", "generate", str(src), "-o",
                            str(tmp / "run"), "-t", "openai:gpt-test", "--base-url", url,
                            "--api-key-env", "SYNTH_BENCH_KEY", "--intent", "internal",
                            "--no-progress"], cwd=ROOT, env=env, capture_output=True,
                           text=True)
        if p.returncode:
            raise SystemExit(p.stderr[-2000:])
        print(f"{a.n:,} rows from synth generate (openai:gpt-test on the loopback server); "
              f"jobs run {a.steps} polls")

        def train(out: Path) -> list[str]:
            return [sys.executable, "-m", "synth", "train", "-d", str(tmp / "run"), "-s",
                    "gpt-4.1-nano-2025-04-14", "-o", str(out), "--backend", "openai",
                    "--intent", "internal", "--base-url", url, "--api-key-env",
                    "SYNTH_BENCH_KEY", "--poll-interval", "0.01"]

        def report(name: str, out: Path, wall: float, err: str, jobs_before: int,
                   files_before: int) -> None:
            s = json.loads((out / "train.json").read_text())
            lines = [ln for ln in err.splitlines() if re.match(r"\s+\d\d:\d\d:\d\d ", ln)]
            twice = sum(c - 1 for c in Counter(lines).values() if c > 1)
            leaked = any(KEY.encode() in f.read_bytes() for f in out.rglob("*") if f.is_file())
            print(f"{name:<6} {wall:6.1f}s  jobs {server.fine_tuning.created - jobs_before}  "
                  f"uploads {len(server.batches.files) - files_before - 1}  events printed "
                  f"{len(lines)} (twice: {twice})  {s['status']} {s['fine_tuned_model']}  "
                  f"trained tokens {s['trained_tokens']:,}  key in a file: {leaked}")

        jobs0, files0 = server.fine_tuning.created, len(server.batches.files)
        t = time.perf_counter()
        p = subprocess.run(train(tmp / "clean"), cwd=ROOT, env=env, capture_output=True,
                           text=True)
        if p.returncode:
            raise SystemExit(p.stderr[-2000:])
        report("clean", tmp / "clean", time.perf_counter() - t, p.stderr, jobs0, files0)

        jobs0, files0 = server.fine_tuning.created, len(server.batches.files)
        proc: dict = {}
        reads = {"n": 0}

        def hook(method: str, route: str) -> None:
            if method == "GET" and POLL.fullmatch(route) and "p" in proc:
                reads["n"] += 1
                if reads["n"] == 3:
                    os.kill(proc["p"].pid, signal.SIGKILL)

        server.batch_hook = hook
        t = time.perf_counter()
        proc["p"] = subprocess.Popen(train(tmp / "drill"), cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        _, err1 = proc["p"].communicate()
        killed = proc["p"].returncode == -signal.SIGKILL
        server.batch_hook = None
        p = subprocess.run(train(tmp / "drill"), cwd=ROOT, env=env, capture_output=True,
                           text=True)
        if p.returncode:
            raise SystemExit(p.stderr[-2000:])
        print(f"drill: SIGKILLed at the job's 3rd poll: {killed}; rerun attached: "
              f"{'attaching to' in p.stderr}")
        report("drill", tmp / "drill", time.perf_counter() - t, err1 + p.stderr, jobs0,
               files0)


if __name__ == "__main__":
    main()
