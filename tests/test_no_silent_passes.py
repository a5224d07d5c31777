"""Issue 8, "no silent passes": a missing dependency, a column the data lacks, or a verify
step that verified nothing is said out loud, before or while the recipe runs."""

import json
import subprocess
import sys
from pathlib import Path

import orjson
import polars as pl
import pytest

from synth.curate import curate, load_filter_set
from synth.curate.steps import field_texts
from synth.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


def recipe(tmp_path, *steps, name="r.yaml"):
    p = tmp_path / name
    p.write_text("steps:\n" + "".join(f"  - {s}\n" for s in steps))
    return p


def chat_rows():
    """Rows as `synth generate` writes them: the request is in `messages`, no `prompt`."""
    qs = ["What is two plus two?", "What is two plus two?", "Name a prime number.",
          "Name a prime number above ten."]
    return pl.DataFrame({
        "id": [f"r{i}" for i in range(4)],
        "messages": [[{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": q}] for q in qs],
        "response": ["Four.", "It is 4.", "Seven is prime.", "Eleven is prime."],
        "reference": ["4", "4", None, None],
    })


# ----------------------------------------------------------------------- dependencies

@pytest.mark.parametrize("step,module,pip", [
    ("verify_math", "math_verify", "math-verify"),
    ("language: {languages: [en]}", "py3langid", "py3langid"),
    ("semantic_dedup", "sentence_transformers", "sentence-transformers"),
    ("quality: {exemplars: ex.txt}", "sentence_transformers", "sentence-transformers"),
])
def test_missing_dependency_fails_at_recipe_load(tmp_path, monkeypatch, step, module, pip):
    # a module set to None in sys.modules is one Python refuses to import: the package
    # is as absent as if it had never been installed
    monkeypatch.setitem(sys.modules, module, None)
    (tmp_path / "ex.txt").write_text("an exemplar\n")
    p = recipe(tmp_path, "empty", step)
    with pytest.raises(InputError) as exc:
        load_filter_set(p)
    msg = str(exc.value)
    assert f"{p}:3:" in msg and f"pip install {pip}" in msg and "synth[curate]" in msg


def test_missing_math_verify_is_a_clean_cli_error(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "a", "response": "#### 5", "reference": "4"}) + "\n")
    code = ("import sys; sys.modules['math_verify'] = None; sys.argv = ['synth', 'curate', "
            f"{str(rows)!r}, '--recipe', 'math-cot', '--out', {str(tmp_path / 'o')!r}]; "
            "from synth.cli import main; main()")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 3, p.stderr
    assert "Traceback" not in p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("synth: error: filters/math-cot.yaml:") and "math-verify" in line
    assert not (tmp_path / "o").exists()


def test_local_judge_without_torch_fails_at_load(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    p = recipe(tmp_path, "llm_judge: {teacher: 'local:smollm2-135m-instruct'}")
    with pytest.raises(InputError, match=r"needs torch.*pip install torch==2\.13\.0"):
        load_filter_set(p)


# ----------------------------------------------------------------------- columns

def test_a_column_the_rows_lack_fails_before_any_step_runs(tmp_path):
    df = pl.DataFrame({"id": ["a", "b"], "response": ["x y z", "x y z"]})
    p = recipe(tmp_path, "empty", "exact_dedup", "near_dedup: {field: prompt}")
    seen = []
    with pytest.raises(InputError) as exc:
        curate(df, filters=p, out=tmp_path / "out", on_step=seen.append)
    msg = str(exc.value)
    assert f"{p}:4: field 'near_dedup'" in msg
    assert "'messages' or 'prompt'" in msg and "the rows have: id, response" in msg
    assert seen == [] and not (tmp_path / "out").exists()


def test_columns_added_by_earlier_steps_count(tmp_path):
    df = pl.DataFrame({"id": ["a", "b", "c"], "response": ["one two three"] * 2 + ["four"]})
    ok = recipe(tmp_path, "length: {min_words: 1}",
                "near_dedup: {score_column: response_words}")
    res = curate(df, filters=ok)
    assert res.kept["id"].to_list() == ["a", "c"]
    bad = recipe(tmp_path, "near_dedup: {score_column: response_words}", "length",
                 name="bad.yaml")
    with pytest.raises(InputError, match=r"bad\.yaml:2: .*'response_words'"):
        curate(df, filters=bad)


def test_verify_steps_need_a_reference_column(tmp_path):
    df = pl.DataFrame({"id": ["a"], "response": ["#### 4"]})
    with pytest.raises(InputError, match="'reference'"):
        curate(df, filters=recipe(tmp_path, "verify_math"))


def test_a_field_that_is_not_text_is_refused(tmp_path):
    df = pl.DataFrame({"id": ["a"], "response": ["hi"], "score": [3]})
    with pytest.raises(InputError, match="field 'score' holds Int64, not text"):
        curate(df, filters=recipe(tmp_path, "length: {field: score}"))


# ----------------------------------------------------------------------- one meaning of field

def test_field_prompt_means_the_request_in_every_step(tmp_path):
    df = chat_rows()
    prompt = field_texts(df, "prompt").to_list()
    assert prompt[0] == "Be brief.\nWhat is two plus two?"
    res = curate(df, filters=recipe(
        tmp_path, "length: {field: prompt, min_words: 1}", "exact_dedup: {field: prompt}"))
    assert res.kept["prompt_words"].to_list() == [7, 6, 8]
    assert res.rejected["drop_reason"].to_list() == ["duplicate: of r0"]
    near = curate(df, filters=recipe(tmp_path, "near_dedup: {field: prompt, shingle: 2, "
                                              "threshold: 0.9}", name="n.yaml"))
    assert near.rejected["id"].to_list() == ["r1"]
    # a plain `prompt` column works the same for rows that have no messages
    plain = pl.DataFrame({"id": ["a", "b"], "prompt": ["same words", "same words"],
                          "response": ["1", "2"]})
    assert curate(plain, filters=recipe(tmp_path, "exact_dedup: {field: prompt}",
                                       name="p.yaml")).kept.height == 1


def test_field_both_keeps_prompt_and_response_apart(tmp_path):
    df = pl.DataFrame({"id": ["a", "b", "c"], "prompt": ["x y", "x", "x y"],
                       "response": ["z", "y z", "z"]})
    res = curate(df, filters=recipe(tmp_path, "exact_dedup: {field: both}"))
    assert res.kept["id"].to_list() == ["a", "b"]


def test_decontaminate_fields_follow_the_same_rule(tmp_path):
    bench = tmp_path / "bench.jsonl"
    leak = "the quick brown fox jumps over the lazy dog near the quiet river bank today"
    bench.write_text(json.dumps({"id": "b1", "text": leak}) + "\n")
    df = pl.DataFrame({"id": ["a", "b"], "response": ["fine", "fine"],
                       "notes": [leak, "nothing here"]})
    res = curate(df, filters=recipe(
        tmp_path, f"decontaminate: {{benchmarks: [{bench}], fields: [notes]}}"))
    assert res.rejected["id"].to_list() == ["a"]
    with pytest.raises(InputError, match="'messages' or 'prompt'"):
        curate(df, filters=recipe(tmp_path, f"decontaminate: {{benchmarks: [{bench}]}}",
                                 name="d.yaml"))


# ----------------------------------------------------------------------- loud unverifiable

def test_all_unverifiable_is_a_warning_everywhere(tmp_path):
    pytest.importorskip("math_verify")
    df = pl.DataFrame({"id": ["a", "b", "c"], "response": ["no idea", "hmm", "#### 3"],
                       "reference": [None, None, None]})
    p = recipe(tmp_path, "verify_math")
    res = curate(df, filters=p, out=tmp_path / "out")
    (w,) = res.summary["warnings"]
    assert w.startswith("verify_math: every row could not be verified (no reference (3))")
    step = res.summary["steps"][0]
    assert step["warnings"] == [w]
    assert step["info"]["verdicts"] == {"correct": 0, "wrong": 0, "unverifiable": 3,
                                        "unverifiable_share": 1.0,
                                        "unverifiable_reasons": {"no reference": 3}}
    saved = orjson.loads((tmp_path / "out" / "curation.json").read_bytes())
    assert saved["warnings"] == [w]
    assert "could not be verified" in (tmp_path / "out" / "report.html").read_text()


def test_a_few_unverifiable_rows_stay_quiet_and_the_share_is_a_setting(tmp_path):
    pytest.importorskip("math_verify")
    df = pl.DataFrame({"id": ["a", "b", "c"], "response": ["#### 4", "#### 5", "no idea"],
                       "reference": ["4", "4", "4"]})
    res = curate(df, filters=recipe(tmp_path, "verify_math"))
    assert res.summary["warnings"] == []
    strict = curate(df, filters=recipe(tmp_path, "verify_math: {max_unverifiable: 0.2}",
                                      name="s.yaml"))
    assert strict.summary["warnings"] == [
        "verify_math: 1 of 3 rows (33%) could not be verified (no answer extracted (1)); they "
        "were kept unchecked (drop_unverifiable: true drops them)"]
    with pytest.raises(InputError, match="max_unverifiable must be a share"):
        load_filter_set(recipe(tmp_path, "verify_math: {max_unverifiable: 2}", name="b.yaml"))


def test_cli_prints_the_warning_on_the_step_line(tmp_path):
    pytest.importorskip("math_verify")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": i, "response": "x", "reference": None}) + "\n"
                            for i in "ab"))
    p = subprocess.run([sys.executable, "-m", "synth", "curate", str(rows), "--recipe",
                        str(recipe(tmp_path, "verify_math")), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "verdicts: 0 correct, 0 wrong, 2 unverifiable" in p.stderr
    assert "WARNING: verify_math: every row could not be verified" in p.stderr
    assert "1 warning(s)" in p.stderr


def test_decontaminate_fields_that_are_not_text_are_refused(tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "b1", "text": "one two three four"}) + "\n")
    df = pl.DataFrame({"id": ["a"], "response": ["hi"], "score": [3]})
    with pytest.raises(InputError, match="field 'score' holds Int64, not text"):
        curate(df, filters=recipe(
            tmp_path, f"decontaminate: {{benchmarks: [{bench}], fields: [response, score]}}"))
