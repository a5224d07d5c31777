"""``synth eval --compare``: the student as trained and its quantised GGUF files scored on the
same prompts, one table (size on disk, tokens/s, accuracy, agreement) and one plot."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def quantised(tmp_path_factory):
    """A tiny Llama student (byte-level BPE, chat template) and its q8_0 and q4_0 files."""
    from synth.train.gguf_export import export_gguf
    from tests.test_export_gguf import build_student

    d = tmp_path_factory.mktemp("compare")
    student = build_student(d / "student")
    files = {q: export_gguf(student, d / f"student.{q}.gguf", quant=q).out
             for q in ("q8_0", "q4_0")}
    return student, files


def test_every_version_answers_the_same_prompts_for_real(tmp_path, quantised):
    """No stand-in: each file is loaded (the GGUFs dequantised by transformers) and answers
    every held-out prompt; sizes are the files', formats their GGUF file types."""
    from synth.train import evaluate
    from tests.test_eval import held_rows

    student, files = quantised
    data = held_rows(tmp_path / "held.jsonl")
    res = evaluate(student=str(student), teacher=str(student), data=data,
                   out=tmp_path / "ev", max_new_tokens=6, progress=False,
                   compare=(str(files["q8_0"]), str(files["q4_0"])))
    rows = res["variants"]["rows"]
    assert [r["name"] for r in rows] == ["student", "student.q8_0.gguf", "student.q4_0.gguf"]
    assert [r["format"] for r in rows] == ["fp32", "Q8_0", "Q4_0"]
    assert rows[1]["bytes"] == files["q8_0"].stat().st_size
    assert rows[0]["bytes"] == (student / "model.safetensors").stat().st_size
    assert rows[0]["bytes"] > rows[1]["bytes"] > rows[2]["bytes"]
    task = res["task"]
    assert all(r["n"] == task["n"] == 12 for r in rows)  # the same denominator
    assert all(r["correct"] + r["wrong"] + r["unverifiable"] == r["n"] for r in rows)
    # the first row is the student the table above it scored
    assert rows[0]["accuracy"] == task["student"]["accuracy"]
    assert rows[0]["agreement"] == task["agreement"] and rows[0]["same_as_student"] == 1.0
    assert all(r["tokens_per_s"] > 0 for r in rows)
    saved = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert saved["variants"]["rows"] == json.loads(json.dumps(rows))
    assert (tmp_path / "ev" / "variants.png").read_bytes().startswith(b"\x89PNG")
    assert saved["variants"]["plot"].endswith("variants.png")


def test_the_figures_of_each_version(tmp_path, quantised, monkeypatch):
    """Accuracy, share of the teacher's, same verdict as the teacher and same text as the
    student, per version, on answers chosen so every figure differs."""
    from synth.train import evaluation as E
    from synth.train.evaluation import Answer
    from tests.test_eval import held_rows

    student, files = quantised
    data = held_rows(tmp_path / "held.jsonl")

    def answers(spec, prompts, **kw):
        out = []
        for p in prompts:
            i = int(p.id[1:])
            right = f"it is {i + 2} ."
            wrong = f"it is {i + 50} ."
            if spec.endswith("q4_0.gguf"):  # wrong on 4 prompts the student gets right
                text = wrong if i < 4 or i >= 10 else right
            elif spec.endswith("q8_0.gguf"):  # right where the student is, other words
                text = (f"the answer: {i + 2}" if i < 10 else wrong)
            elif spec.endswith("-teacher"):
                text = right
            else:  # the student: right on 10 of 12
                text = right if i < 10 else wrong
            out.append(Answer(text, text, "stop", None, 5, 4))
        return out, {"gen_tokens": 48, "gen_s": 0.5, "gen_tokens_per_s": 96.0}

    monkeypatch.setattr(E, "answer_prompts", answers)
    teacher = tmp_path / "student-teacher"
    shutil.copytree(student, teacher)
    res = E.evaluate(student=str(student), teacher=str(teacher), data=data,
                     out=tmp_path / "ev", max_new_tokens=8, progress=False,
                     task="math", compare=(str(files["q8_0"]), str(files["q4_0"])))
    s, q8, q4 = res["variants"]["rows"]
    assert res["task"]["teacher"]["accuracy"] == 1.0
    assert (s["accuracy"], q8["accuracy"], q4["accuracy"]) == (10 / 12, 10 / 12, 6 / 12)
    assert (s["retained"], q4["retained"]) == (10 / 12, 6 / 12)
    assert (s["agreement"], q8["agreement"], q4["agreement"]) == (10 / 12, 10 / 12, 6 / 12)
    # q8_0 says the same thing in other words: same verdicts, not the same text
    assert (s["same_as_student"], q8["same_as_student"], q4["same_as_student"]) == \
        (1.0, 2 / 12, 8 / 12)


def test_a_missing_file_is_refused_before_anything(tmp_path, quantised):
    from synth.errors import ConfigError
    from synth.train import evaluate
    from tests.test_eval import held_rows

    student, _ = quantised
    data = held_rows(tmp_path / "held.jsonl")
    with pytest.raises(ConfigError, match=r"--compare .*nope\.gguf: not a \.gguf file"):
        evaluate(student=str(student), teacher=str(student), data=data,
                 out=tmp_path / "ev", compare=str(tmp_path / "nope.gguf"), progress=False)
    assert not (tmp_path / "ev").exists()


def test_cli_takes_the_option_once_per_file(tmp_path, quantised):
    import os
    import subprocess
    import sys

    from tests.test_eval import held_rows

    student, files = quantised
    data = held_rows(tmp_path / "held.jsonl")
    p = subprocess.run([sys.executable, "-m", "synth", "eval", "-s", str(student), "-t",
                        str(student), "-d", str(data), "-o", str(tmp_path / "ev"),
                        "--max-new-tokens", "4", "--limit", "3", "--no-progress",
                        "--compare", str(files["q8_0"]), "--compare", str(files["q4_0"])],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "COLUMNS": "200"})
    assert p.returncode == 0, p.stderr
    assert "student.q4_0.gguf" in p.stdout and "Q8_0" in p.stdout
    rows = json.loads((tmp_path / "ev" / "eval.json").read_text())["variants"]["rows"]
    assert len(rows) == 3 and all(r["n"] == 3 for r in rows)


def test_a_variants_png_of_yours_beside_the_student_is_never_replaced(tmp_path, quantised,
                                                                      monkeypatch):
    """By default eval writes beside the student; variants.png is one of its names, so a
    file of that name it did not write is refused, not overwritten."""
    from synth.errors import ConfigError
    from synth.train import evaluation as E
    from tests.test_eval import held_rows

    student, files = quantised
    mine = tmp_path / "student"
    shutil.copytree(student, mine)
    (mine / "train.json").write_text(json.dumps({"student": "x", "loss": "kl"}))
    (mine / "variants.png").write_bytes(b"my picture")
    monkeypatch.setattr(E, "answer_prompts", lambda spec, prompts, **kw: (
        [E.Answer("it is 4 .", "it is 4 .", "stop") for _ in prompts],
        {"gen_tokens": 1, "gen_s": 1.0, "gen_tokens_per_s": 1.0}))
    with pytest.raises(ConfigError, match=r"holds variants\.png"):
        E.evaluate(student=str(mine), teacher=str(student),
                   data=held_rows(tmp_path / "held.jsonl"), max_new_tokens=4,
                   progress=False, compare=(str(files["q8_0"]),))
    assert (mine / "variants.png").read_bytes() == b"my picture"
    assert not (mine / "eval.json").exists()
