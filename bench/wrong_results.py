"""The three wrong results of "Numbers you can trust", replayed through the public API on
whichever synth is importable, so each can be seen failing on an old checkout and passing on
this one:

    python bench/wrong_results.py                        # this checkout
    git worktree add /tmp/old 75a2b54                    # the commit before the fix
    SYNTH_ROOT=/tmp/old python bench/wrong_results.py    # the old code (its tests/ too)

1. packing over several epochs: every training example visited once per epoch (3 epochs,
   packed, 40 rows of varied length, batch 1);
2. eval's denominator: a student that answers nothing, or is cut off, on half the prompts
   keeps half the teacher's accuracy, not all of it;
3. the held-out split: with ``samples: 2``, ``route: all`` and two Evol rounds, no source
   prompt on both sides, the prompts the teacher got wrong held out too, and eval scoring
   every held-out prompt with a reference once.

Prints PASS or FAIL per result. The tests that keep them fixed: ``tests/test_train.py``
(packed epochs, across ``--resume``), ``tests/test_eval.py`` (the denominator),
``tests/test_split.py`` (the split in all three entry points). Tiny random models, a local
provider server: about a minute on 2 cores.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import random
import re
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(os.environ.get("SYNTH_ROOT", Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(ROOT))

import synth  # noqa: E402
from tests.tiny_models import build_tiny_model  # noqa: E402

#: The old tree (75a2b54) named eval's module ``synth.train.evaluate``, which shadowed the
#: function; today it is ``synth.train.evaluation`` (the package is callable: synth.train).
NEW = (Path(synth.__file__).parent / "rows.py").exists()
WORDS = "the quick brown fox dog cat bird fish tree river red green blue".split()


def packing_over_epochs(tmp: Path, tiny: Path) -> str:
    rng = random.Random(3)
    data = tmp / "rows.jsonl"
    with open(data, "w") as f:
        for i in range(40):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
            f.write(json.dumps({"id": f"r{i}", "prompt_id": f"p{i}",
                                "messages": [{"role": "user", "content": f"repeat {words}"}],
                                "response": f"{words} .", "status": "ok"}) + "\n")
    D = importlib.import_module("synth.train.data")
    seen: Counter = Counter()
    real = D.collate

    def spy(examples, rows, **kw):  # every packed row's examples, as the trainer batches them
        seen.update(examples[i].row for r in rows for i in r)
        return real(examples, rows, **kw)

    D.collate = spy
    try:
        synth.train(data=data, student=str(tiny), epochs=3, batch_size=1, packing=True,
                    max_len=64, seed=0, out=tmp / "pack", progress=False)
    except Exception as e:  # noqa: BLE001 - the old code raised IndexError here
        return f"FAIL ({type(e).__name__}: {str(e)[:100]})"
    finally:
        D.collate = real
    if seen == {i: 3 for i in range(40)}:
        return "PASS (each of 40 examples visited 3 times)"
    return f"FAIL (visits per example: {sorted(set(seen.values()))})"


def eval_denominator(tmp: Path, tiny: Path) -> str:
    held = tmp / "held.jsonl"
    held.write_text("".join(json.dumps({
        "id": f"q{i}:0", "prompt_id": f"q{i}", "response": f"it is {i + 2} .", "status": "ok",
        "messages": [{"role": "user", "content": f"two and {i}"}], "reference": str(i + 2)})
        + "\n" for i in range(12)))
    E = importlib.import_module("synth.train.evaluation" if NEW else "synth.train.evaluate")

    def answer(spec: str, i: int) -> str:
        if spec.endswith("student") and i % 2:
            return "" if i % 4 == 1 else "The answer is"  # empty, or cut off
        return f"The answer is {i + 2}."

    if NEW:
        def fake(spec, prompts, **kw):
            texts = [answer(spec, int(p.id[1:])) for p in prompts]
            return ([E.Answer(t, t, "length" if t == "The answer is" else "stop")
                     for t in texts], {"gen_tokens": 1, "gen_s": 1.0, "gen_tokens_per_s": 1.0})
        E.answer_prompts = fake
    else:
        async def fake(spec, prompts, **kw):
            return ([answer(spec, int(p.id.split(":")[0][1:])) for p in prompts],
                    {"gen_tokens": 1, "gen_s": 1.0, "gen_tokens_per_s": 1.0})
        E._answer_all = fake
    shutil.copytree(tiny, tmp / "student")
    res = synth.evaluate(student=str(tmp / "student"), teacher=str(tiny), data=held,
                         out=tmp / "ev", max_new_tokens=8, progress=False)
    kept = res["task"]["retained"]
    return ("PASS" if abs(kept - 0.5) < 1e-9 else "FAIL") + f" (retained {kept:g}, want 0.5)"


GIVEN = re.compile(r"#Given Prompt#:\n(.*?)\n\n#(?:Rewritten|Created) Prompt#:", re.S)
MARK = re.compile(r"src\d\d")
TAKES = itertools.count()


def _responder(text: str, body: dict) -> str | None:
    m = GIVEN.search(text)
    if m:  # an evolution keeps the instruction (and its marker word) and adds to it
        return m.group(1) + " Include one concrete example and a short justification."
    if text.startswith("Here are two instructions"):
        return "Not Equal"
    if "[[reply:" in text:
        return None  # the server's scripted answer
    return f"Echo: {text} (from {body.get('model')}, take {next(TAKES)})"


def heldout_split(tmp: Path, tiny: Path) -> str:
    import pyarrow.parquet as pq

    from tests.provider_server import ProviderServer

    d = tmp / "pipe"
    d.mkdir()
    lines = {
        "answers.jsonl": [{"id": f"a{i}", "prompt": f"question src{i:02d} about tea",
                           "reference": "4"} for i in range(30)],
        # the teacher is wrong on every other cot prompt: its samples are all rejected
        "cot.jsonl": [{"id": f"c{i}", "reference": "4", "prompt": f"add src{i:02d} two and "
                       f"two [[reply:The answer is \\boxed{{{4 + i % 2}}}]]"}
                      for i in range(30, 60)],
        "inst.jsonl": [{"id": f"e{i}", "instruction": f"Explain how src{i:02d} tides work."}
                       for i in range(60, 90)]}
    for name, items in lines.items():
        (d / name).write_text("".join(json.dumps(x) + "\n" for x in items))
    with ProviderServer() as server:
        server.responder = _responder
        (d / "p.yaml").write_text(f"""\
name: leak
teacher: openai:gpt-test
intent: research
accept_terms: [unknown]
options: {{base_url: "{server.url}/v1", max_retries: 2, concurrency: 8}}
generate:
  - {{name: answers, recipe: responses, input: answers.jsonl, route: all, samples: 2,
      temperature: 1.0, teachers: [{{teacher: openai:gpt-test}}, {{teacher: openai:gpt-other}}]}}
  - {{name: cot, recipe: cot, input: cot.jsonl, samples: 2}}
  - {{name: evolved, recipe: evol, input: inst.jsonl, rounds: 2}}
curate: {{recipe: default}}
train: {{student: "from-teacher:layers=1", teacher: "{tiny}", loss: sft, max_steps: 2,
         batch_size: 4, max_len: 256}}
eval: {{holdout: 0.3, teacher: "{tiny}", max_new_tokens: 4}}
report: {{vendi: false}}
""")
        synth.run(d / "p.yaml", out=d / "run", progress=False)

    def marks(path: Path) -> set[str]:
        return {m for r in pq.read_table(path).to_pylist()
                for m in MARK.findall(" ".join(x["content"] for x in r["messages"]))}

    run = d / "run"
    train, held = marks(run / "split/train.parquet"), marks(run / "split/heldout.parquet")
    both = train & held
    wrong = {f"src{i:02d}" for i in range(31, 60, 2)}
    task = json.loads((run / "eval/eval.json").read_text()).get("task") or {}
    n = task.get("n", task.get("rows"))
    with_ref = {s for s in held if int(s[3:]) < 60}
    ok = not both and wrong & held and n == len(with_ref)
    return (("PASS" if ok else "FAIL") + f" ({len(both)} source prompts on both sides; "
            f"{len(wrong & held)} prompts the teacher got wrong held out; eval scored {n} "
            f"for {len(with_ref)} held-out prompts with a reference)")


CHECKS = {"1": ("packing over 3 epochs", packing_over_epochs),
          "2": ("eval's denominator", eval_denominator),
          "3": ("the held-out split", heldout_split)}


def main(argv: list[str]) -> int:
    if argv:  # one check, in this process
        name, check = CHECKS[argv[0]]
        tmp = Path(tempfile.mkdtemp(prefix="synth-wrong-"))
        try:
            verdict = check(tmp, build_tiny_model(tmp / "tiny"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"{argv[0]} {name}: {verdict}")
        return 0 if verdict.startswith("PASS") else 1
    # each check in a process of its own: on the old tree, importing the module
    # synth.train.evaluate rebound the name the pipeline's `from synth.train import evaluate`
    # reads (the shadowing that naming it synth.train.evaluation fixed)
    import subprocess

    print("synth from", Path(synth.__file__).parent, flush=True)
    failed = 0
    for key, (name, _) in CHECKS.items():
        p = subprocess.run([sys.executable, __file__, key], capture_output=True, text=True)
        lines = p.stdout.strip().splitlines()
        last = lines[-1] if lines and lines[-1].startswith(f"{key} ") else \
            f"{key} {name}: FAIL ({(p.stderr.strip().splitlines() or ['no output'])[-1][:160]})"
        print(last, flush=True)
        failed += not last.split(": ", 1)[1].startswith("PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
