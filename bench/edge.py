"""The quickstart student for the edge: fp32 against its GGUF files, in transformers and in
llama.cpp, on the quickstart's held-out prompts.

Needs a finished quickstart run (``synth run examples/quickstart.yaml``: its student and the
``eval/student.*.gguf`` files its ``quantise`` section writes). Then, in one run:

1. ``q4_k_m`` is exported too when llama.cpp's ``llama-quantize`` is on PATH (``synth export
   --format gguf --quant q4_k_m``, the whole command);
2. ``synth eval --compare FILE ...`` (the whole command, as a user runs it) scores the fp32
   student and every GGUF on the same held-out prompts through transformers (which
   dequantises a GGUF on load; batched, 32 in flight): bytes, tokens/s, accuracy, share of
   the teacher's, same verdict as the teacher;
3. each GGUF is served by llama.cpp's server (llama-cpp-python[server], optional: it
   compiles llama.cpp; skipped with a note when absent) and asked the same prompts one at a
   time, greedily, through the openai client: accuracy by the same checks, tokens/s, same
   verdict as the teacher, same verdict as the same file in transformers; and
   transformers is timed one at a time on the same prompts, so the two engines' tokens/s
   compare like with like.

    python bench/edge.py [--run runs/quickstart] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import llama_server as L  # noqa: E402


def synth(*args: str) -> None:
    p = subprocess.run([sys.executable, "-m", "synth", *args], capture_output=True,
                       text=True, env={**os.environ, "COLUMNS": "200"})
    if p.returncode:
        sys.exit(f"synth {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-3000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "quickstart")
    ap.add_argument("--repeat", type=int, default=1, help="llama.cpp passes per file")
    a = ap.parse_args()
    run = a.run
    student = run / "student"
    if not (student / "config.json").is_file():
        sys.exit(f"{student}: no trained student: run `synth run examples/quickstart.yaml`")
    import yaml

    spec = yaml.safe_load((run / "pipeline.yaml").read_text())
    teacher = spec["eval"].get("teacher") or spec["teacher"]
    max_new = int(spec["eval"].get("max_new_tokens", 256))
    ggufs = sorted(run.glob("eval/student.*.gguf"))
    tmp = Path(tempfile.mkdtemp(prefix="synth-edge-"))
    if shutil.which("llama-quantize"):
        synth("export", str(student), "--format", "gguf", "--quant", "q4_k_m", "--out",
              str(tmp / "student.q4_k_m.gguf"))
        ggufs.append(tmp / "student.q4_k_m.gguf")
    else:
        print("q4_k_m: not measured (llama.cpp's llama-quantize is not on PATH)")
    synth("eval", "-s", str(student), "-t", teacher, "-d", str(run), "-o", str(tmp / "ev"),
          "--max-new-tokens", str(max_new), "--no-progress",
          *[x for g in ggufs for x in ("--compare", str(g))])
    ev = json.loads((tmp / "ev" / "eval.json").read_text())
    lines = [json.loads(x) for x in (tmp / "ev" / "answers.jsonl").read_text().splitlines()]
    convs = [x["messages"] for x in lines]
    refs = [x["reference"] for x in lines]
    t_verdict = [x["teacher"]["verdict"] for x in lines]
    rows = {r["name"]: r for r in ev["variants"]["rows"]}

    from synth.records import Prompt
    from synth.train.evaluation import Answer, answer_prompts, check_answers

    prompts = [Prompt(id=x["prompt"], messages=m) for x, m in zip(lines, convs)]
    n = len(lines)
    out = []
    for name, path in [("student", student)] + [(g.name, g) for g in ggufs]:
        r = rows[name]
        hf1, sp1 = answer_prompts(str(path), prompts, max_new_tokens=max_new, batch_size=1)
        hf_v = [o for o, _ in check_answers(hf1, refs, "auto", max_new_tokens=max_new)]
        row = {"name": name, "format": r["format"], "bytes": r["bytes"],
               "hf_acc": r["accuracy"], "hf_tps_batched": r["tokens_per_s"],
               "hf_tps_one": sp1["gen_tokens_per_s"], "hf_same_teacher": r["agreement"]}
        if path.suffix == ".gguf" and L.available():
            tps, got = [], None
            for _ in range(a.repeat):
                with L.llama_server(path, log=tmp / f"{name}.log") as url:
                    got, wall = L.ask(url, convs, max_tokens=max_new)
                tps.append(sum(g["completion_tokens"] for g in got) / wall)
            ans = [Answer(g["text"], g["text"], g["finish_reason"]) for g in got]
            v = [o for o, _ in check_answers(ans, refs, "auto", max_new_tokens=max_new)]
            row.update(llama_acc=sum(x == "correct" for x in v) / n,
                       llama_tps=sum(tps) / len(tps), llama_tps_all=tps,
                       llama_same_teacher=sum(x == y for x, y in zip(v, t_verdict)) / n,
                       llama_same_hf=sum(x == y for x, y in zip(v, hf_v)) / n)
        out.append(row)
    t_acc = ev["task"]["teacher"]["accuracy"]
    print(f"\nheld-out prompts n = {n}; teacher {teacher}: accuracy {t_acc:.1%}; "
          f"llama.cpp: {'llama-cpp-python server' if L.available() else 'not installed'}")
    print("| version | format | MiB | transformers acc | of teacher | same verdict as "
          "teacher | tok/s transformers (32 in flight / 1) | llama.cpp acc | llama.cpp tok/s "
          "(1) | llama.cpp = transformers verdict |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in out:
        ll = ("-", "-", "-") if "llama_acc" not in r else (
            f"{r['llama_acc']:.1%}", f"{r['llama_tps']:.1f}", f"{r['llama_same_hf']:.1%}")
        print(f"| {r['name']} | {r['format']} | {r['bytes'] / 2**20:.1f} | {r['hf_acc']:.1%} | "
              f"{r['hf_acc'] / t_acc:.1%} | {r['hf_same_teacher']:.1%} | "
              f"{r['hf_tps_batched']:.1f} / {r['hf_tps_one']:.1f} | {ll[0]} | {ll[1]} | "
              f"{ll[2]} |")
    (tmp / "edge.json").write_text(json.dumps(out, indent=1))
    print(f"\n→ {tmp / 'edge.json'}")


if __name__ == "__main__":
    main()
