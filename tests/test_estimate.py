"""`synth estimate`'s cost estimator, through the loopback provider server.

The server counts completion tokens as words and prompt tokens as words + 3 a message, and
``server.responder`` scripts the answers: a prompt ``answer N`` is answered with N words,
so the dry run's output tokens, and everything computed from them, are known exactly.
"""

import json

import pyarrow.parquet as pq
import pytest

from synth.errors import InputError
from synth.pipeline.estimate import (
    BREAK_EVEN_TABLE,
    STAGE_KEYS,
    break_even,
    estimate_stage,
    format_estimate,
    summarise,
)
from synth.recipes.base import PlannedCall, TeacherRoute, Teaching, route_prompts
from synth.records import Prompt
from synth.teachers.pricing import load_prices

FAST = dict(progress=False, retry_initial_delay=0.01, max_retries=3, intent="research",
            accept_terms=("unknown", "anthropic-api"))


def words(text, body):
    """``answer N`` → N words; anything else → one word."""
    parts = text.split()
    return " ".join(["w"] * int(parts[1])) if parts and parts[0] == "answer" else "ok"


def answer_prompts(ns, prefix="p"):
    # "answer N" (N < 100): estimate_tokens = (8 or 9 chars + 8) // 4 + 4 = 8 tokens;
    # the server reports 2 words + 3 = 5 prompt tokens
    return [Prompt(id=f"{prefix}{i}", messages=[{"role": "user", "content": f"answer {n}"}])
            for i, n in enumerate(ns)]


def judge_prompts(k):
    # chars: "Be fair." 8 + 8, "Judge answer 01 now." 20 + 8 = 44 → 44 // 4 + 4 = 15 tokens
    return [Prompt(id=f"j{i}", messages=[{"role": "system", "content": "Be fair."},
                                         {"role": "user", "content": f"Judge answer {i:02d} now."}])
            for i in range(k)]


def opts(server, price_file, **kw):
    return {**FAST, "base_url": f"{server.url}/v1", "price_file": price_file,
            "max_tokens": 50, **kw}


def test_counts_quantiles_costs_and_the_cache(server, tmp_path, price_file):
    server.responder = words
    answers = answer_prompts(range(1, 11))  # output tokens 1..10
    calls = [PlannedCall("answers", 10, answers),
             PlannedCall("judge", 6, judge_prompts(6), max_tokens=4),
             PlannedCall("later", 4, [])]       # prompts only known once answers exist
    routes = [TeacherRoute("openai:gpt-test")]
    o = opts(server, price_file)
    est = estimate_stage("gen", calls, routes, o, out=tmp_path / "gen", dry_run=10)
    assert server.n_requests == 10
    (t,) = est["teachers"]
    # calibration: reported 10 × 5 prompt tokens over counted 10 × 8
    assert t["token_counter"] == "estimate_tokens+dry_run"
    assert t["input_calibration"] == pytest.approx(0.625)
    by = {c["call"]: c for c in t["calls"]}
    assert [by[c]["requests"] for c in ("answers", "judge", "later")] == [10, 6, 4]
    assert by["answers"]["input_tokens"] == 50          # 10 × 8 × 0.625
    assert by["judge"]["input_tokens"] == 56            # 6 × 15 × 0.625 = 56.25
    assert by["later"]["input_tokens"] == 27            # 4 × (170 / 16) × 0.625 = 26.56
    assert by["later"]["estimated"] and not by["answers"]["estimated"]
    # outputs 1..10: p50 5.5, p90 9.1, mean 5.5; judge capped at 4: p50 4, p90 4, mean 3.4
    assert by["answers"]["output_per_request"] == pytest.approx(
        {"p50": 5.5, "p90": 9.1, "mean": 5.5})
    assert by["judge"]["output_per_request"] == pytest.approx(
        {"p50": 4.0, "p90": 4.0, "mean": 3.4})
    assert (by["answers"]["output_tokens_p50"], by["answers"]["output_tokens_p90"]) == (55, 91)
    assert (by["judge"]["output_tokens_p50"], by["judge"]["output_tokens"]) == (24, 20)
    assert (by["later"]["output_tokens_p50"], by["later"]["output_tokens_p90"]) == (22, 36)
    assert t["requests"] == 20 and t["input_tokens"] == 133
    assert (t["output_tokens_p50"], t["output_tokens_p90"], t["output_tokens"]) == (101, 151, 97)
    # gpt-test: $1 / 1M input, $2 / 1M output
    assert t["cost_usd"] == pytest.approx((133 + 2 * 101) / 1e6)
    assert t["cost_usd_p90"] == pytest.approx((133 + 2 * 151) / 1e6)
    assert t["dry_run_requests"] == 10 and t["dry_run_sent"] == 10
    assert t["dry_run_cost_usd"] == pytest.approx((10 * 5 + 2 * 55) / 1e6)
    assert t["batch_cost_usd"] is None and "no batch price" in t["batch_reason"]
    assert not t["worst_case"]
    assert t["dry_run_dir"] == str(tmp_path / "gen" / "calls" / "answers" / "openai_gpt-test")

    # a second estimate: every dry-run answer comes from the cache, same numbers
    again = estimate_stage("gen", calls, routes, o, out=tmp_path / "gen", dry_run=10)
    assert server.n_requests == 10
    (t2,) = again["teachers"]
    assert t2["dry_run_sent"] == 0 and t2["dry_run_from_cache"] == 10
    assert {k: t2[k] for k in ("input_tokens", "output_tokens_p50", "cost_usd")} == \
        {k: t[k] for k in ("input_tokens", "output_tokens_p50", "cost_usd")}

    # the real run of the same call, into the same folder: nothing sent again
    teaching = Teaching(routes, o, tmp_path / "gen")
    rows = teaching.ask("answers", answers)
    assert server.n_requests == 10 and len(rows) == 10
    assert teaching.calls[0]["summary"]["from_cache"] == 10

    s = summarise([est], break_even_args=None)
    assert set(s) == {"stages", "total_cost_usd", "total_cost_usd_p90",
                      "total_batch_cost_usd", "total_planned_cost_usd", "break_even"}
    (e,) = s["stages"]
    assert list(e) == list(STAGE_KEYS)
    assert e["stage"] == "gen" and e["teacher"] == "openai:gpt-test"
    assert s["total_cost_usd"] == pytest.approx(335e-6)
    assert s["total_cost_usd_p90"] == pytest.approx(435e-6)
    assert s["total_batch_cost_usd"] == pytest.approx(335e-6)  # no batch API: standard
    assert s["break_even"] is None
    json.dumps(s)  # estimate.json
    text = format_estimate(s)
    assert "openai:gpt-test" in text and "$0.0003" in text and "no batch price" in text


def test_batch_price_is_half(server, tmp_path):
    server.responder = words
    prices = tmp_path / "batch.yaml"
    prices.write_text("models:\n  - {provider: openai, match: gpt-test, input: 1.0, "
                      "output: 2.0, batch: 0.5}\n")
    calls = [PlannedCall("answers", 10, answer_prompts(range(1, 11)))]
    est = estimate_stage("gen", calls, [TeacherRoute("openai:gpt-test")],
                         opts(server, prices), out=tmp_path / "gen", dry_run=10)
    (t,) = est["teachers"]
    assert t["cost_usd"] == pytest.approx((50 + 2 * 55) / 1e6)
    assert t["batch_cost_usd"] == pytest.approx((50 + 2 * 55) / 2e6)
    assert t["batch_reason"] is None and t["price"]["batch"] == 0.5
    s = summarise([est], break_even_args=None)
    assert s["total_batch_cost_usd"] == pytest.approx(80e-6)
    assert s["total_planned_cost_usd"] == s["total_cost_usd"]  # as written: synchronous
    # a stage with batch: true costs the batch column; its dry run stays synchronous
    n = server.n_requests
    est = estimate_stage("gen", calls, [TeacherRoute("openai:gpt-test")],
                         {**opts(server, prices), "batch": True}, out=tmp_path / "gen2",
                         dry_run=10)
    assert server.n_requests == n + 10 and server.batches.created == 0
    s = summarise([est], break_even_args=None)
    assert s["stages"][0]["batch"] is True
    assert s["total_planned_cost_usd"] == pytest.approx(80e-6)
    assert "as written (batch: true stages at the batch price): $0.000080" in \
        format_estimate(s)


def test_shipped_batch_prices():
    t = load_prices()
    for provider, model, host in [("openai", "gpt-4o-mini-2024-07-18", "api.openai.com"),
                                  ("openai", "gpt-5", "api.openai.com"),
                                  ("anthropic", "claude-sonnet-4-5", "api.anthropic.com"),
                                  ("anthropic", "claude-haiku-4-5", "api.anthropic.com")]:
        p = t.lookup(provider, model, host)
        assert p.batch == 0.5
        assert p.batch_cost(1_000_000, 1_000_000) == pytest.approx(
            (p.input + p.output) / 2)
    assert t.lookup("openai", "deepseek-chat", "api.deepseek.com").batch is None
    assert t.lookup("local", "x").batch is None


@pytest.mark.parametrize("value", ["-0.5", "0", "1.5", "true", "half"])
def test_bad_batch_value(tmp_path, value):
    f = tmp_path / "p.yaml"
    f.write_text("models:\n"
                 f"  - {{provider: a, match: x, input: 1, output: 1, batch: {value}}}\n")
    with pytest.raises(InputError) as exc:
        load_prices(f)
    assert "field 'batch'" in str(exc.value) and exc.value.line == 2


def test_sampled_dry_run_then_real_run_pays_only_the_rest(server, tmp_path, price_file):
    server.responder = words
    prompts = answer_prompts([3, 1, 4, 7, 5, 9, 2, 6, 8, 10])
    calls = [PlannedCall("answers", 10, prompts)]
    routes = [TeacherRoute("openai:gpt-test")]
    o = opts(server, price_file)
    est = estimate_stage("gen", calls, routes, o, out=tmp_path / "gen", dry_run=4)
    assert server.n_requests == 4
    sent = sorted(int(r["body"]["messages"][-1]["content"].split()[1])
                  for r in server.requests)
    (t,) = est["teachers"]
    assert t["dry_run_requests"] == 4
    assert sorted(t["dry_run_output_tokens"]) == sent
    p50 = (sent[1] + sent[2]) / 2
    p90 = sent[2] + 0.7 * (sent[3] - sent[2])
    assert t["calls"][0]["output_per_request"]["p50"] == pytest.approx(p50)
    assert t["calls"][0]["output_per_request"]["p90"] == pytest.approx(p90)
    assert t["output_tokens_p50"] == round(10 * p50)
    assert t["input_tokens"] == 50  # 10 × 8 × (4 × 5 / (4 × 8))
    # the same seed picks the same sample: nothing new
    estimate_stage("gen", calls, routes, o, out=tmp_path / "gen", dry_run=4)
    assert server.n_requests == 4
    Teaching(routes, o, tmp_path / "gen").ask("answers", prompts)
    assert server.n_requests == 10  # the 6 prompts the dry run did not send


def test_dry_run_keeps_a_finished_runs_outputs(server, tmp_path, price_file):
    server.responder = words
    prompts = answer_prompts(range(1, 11))
    routes = [TeacherRoute("openai:gpt-test")]
    o = opts(server, price_file)
    Teaching(routes, o, tmp_path / "gen").ask("answers", prompts)
    folder = tmp_path / "gen" / "calls" / "answers" / "openai_gpt-test"
    before = (folder / "run.json").read_bytes()
    est = estimate_stage("gen", [PlannedCall("answers", 10, prompts)], routes, o,
                         out=tmp_path / "gen", dry_run=3)
    assert server.n_requests == 10 and est["teachers"][0]["dry_run_from_cache"] == 3
    assert (folder / "run.json").read_bytes() == before
    assert pq.read_table(folder / "traces.parquet").num_rows == 10


def test_two_teachers_split_by_weight(server, tmp_path, price_file, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    server.responder = words
    # distinct prompts ("answer 2 x07": 12 chars → 9 counted, 3 words + 3 = 6 reported)
    prompts = [Prompt(id=f"p{i}", messages=[{"role": "user", "content": f"answer 2 x{i:02d}"}])
               for i in range(20)]
    routes = [TeacherRoute("openai:gpt-test", weight=3,
                           options={"base_url": f"{server.url}/v1"}),
              TeacherRoute("anthropic:claude-test", weight=1,
                           options={"base_url": server.url})]
    groups, _ = route_prompts(prompts, routes)
    n_oa, n_an = len(groups[0]), len(groups[1])
    assert n_oa + n_an == 20 and n_oa > n_an >= 3
    calls = [PlannedCall("answers", 20, prompts), PlannedCall("later", 8, [])]
    o = {**FAST, "price_file": price_file, "max_tokens": 50}
    est = estimate_stage("gen", calls, routes, o, out=tmp_path / "gen", dry_run=3)
    oa, an = est["teachers"]
    paths = sorted(r["path"] for r in server.requests)
    assert paths == ["/v1/chat/completions"] * 3 + ["/v1/messages"] * 3
    assert oa["dry_run_requests"] == an["dry_run_requests"] == 3
    assert [c["requests"] for c in oa["calls"]] == [n_oa, round(8 * n_oa / 20)]
    assert [c["requests"] for c in an["calls"]] == [n_an, 8 - round(8 * n_oa / 20)]
    assert oa["requests"] + an["requests"] == 28
    # every answer has 2 words; 6 prompt tokens reported, 9 counted
    for t, (pin, pout) in [(oa, (1.0, 2.0)), (an, (3.0, 15.0))]:
        assert t["input_calibration"] == pytest.approx(6 / 9)
        assert t["output_tokens_p50"] == t["output_tokens_p90"] == 2 * t["requests"]
        assert t["input_tokens"] == 6 * t["requests"]
        assert t["cost_usd"] == pytest.approx((6 * pin + 2 * pout) * t["requests"] / 1e6)
    s = summarise([est], break_even_args=None)
    assert [e["teacher"] for e in s["stages"]] == ["openai:gpt-test", "anthropic:claude-test"]
    assert s["total_cost_usd"] == pytest.approx(oa["cost_usd"] + an["cost_usd"])
    # the real run: each teacher pays only for the prompts its dry run did not send
    Teaching(routes, o, tmp_path / "gen").ask("answers", prompts)
    assert server.n_requests == 20


def test_all_mode_every_teacher_every_request(server, tmp_path, price_file):
    server.responder = words
    prompts = answer_prompts(range(1, 6))
    routes = [TeacherRoute("openai:gpt-test"), TeacherRoute("openai:gpt-test-b")]
    o = opts(server, price_file)
    est = estimate_stage("gen", [PlannedCall("answers", 5, prompts)], routes, o,
                         out=tmp_path / "gen", dry_run=5, mode="all")
    assert server.n_requests == 10
    assert [t["requests"] for t in est["teachers"]] == [5, 5]
    assert [t["output_tokens_p50"] for t in est["teachers"]] == [15, 15]
    Teaching(routes, o, tmp_path / "gen", mode="all").ask("answers", prompts)
    assert server.n_requests == 10


def test_no_price_means_null_cost_with_a_reason(server, tmp_path, price_file):
    server.responder = words
    calls = [PlannedCall("answers", 4, answer_prompts([1, 2, 3, 4]))]
    est = estimate_stage("gen", calls, [TeacherRoute("openai:unpriced-model")],
                         opts(server, price_file), out=tmp_path / "gen", dry_run=4)
    (t,) = est["teachers"]
    assert t["cost_usd"] is None and t["cost_usd_p90"] is None
    assert t["batch_cost_usd"] is None and t["dry_run_cost_usd"] is None
    assert "no price known for openai:unpriced-model at host 127.0.0.1" in t["cost_reason"]
    assert t["output_tokens_p50"] == 10 and t["input_tokens"] == 20  # tokens still known
    s = summarise([est], break_even_args={"requests_per_day": 100,
                                          "student_cost_per_hour": 1,
                                          "student_requests_per_hour": 100})
    assert s["total_cost_usd"] is None and s["total_batch_cost_usd"] is None
    assert any("no price known" in n for n in s["stages"][0]["notes"])
    assert s["break_even"]["missing"] == ["distil_cost_usd", "teacher_cost_per_request"]


def test_teacher_cost_per_request_counts_priced_teachers_only(server, tmp_path, price_file):
    server.responder = words
    routes = [TeacherRoute("openai:gpt-test"), TeacherRoute("openai:unpriced-model")]
    est = estimate_stage("gen", [PlannedCall("answers", 4, answer_prompts([1, 2, 3, 4]))],
                         routes, opts(server, price_file), out=tmp_path / "gen", dry_run=4,
                         mode="all")
    priced, unpriced = est["teachers"]
    assert priced["cost_usd"] == pytest.approx((4 * 5 + 2 * 10) / 1e6)
    assert unpriced["cost_usd"] is None
    s = summarise([est], break_even_args={"requests_per_day": 100,
                                          "student_cost_per_hour": 1,
                                          "student_requests_per_hour": 100})
    assert s["total_cost_usd"] == pytest.approx(40e-6)
    assert s["break_even"]["inputs"]["teacher_cost_per_request"] == pytest.approx(10e-6)


def test_dry_run_zero_is_the_worst_case(server, tmp_path, price_file):
    calls = [PlannedCall("answers", 10, answer_prompts(range(10))),
             PlannedCall("judge", 6, judge_prompts(6), max_tokens=4)]
    est = estimate_stage("gen", calls, [TeacherRoute("openai:gpt-test")],
                         opts(server, price_file), out=tmp_path / "gen", dry_run=0)
    assert server.n_requests == 0 and not (tmp_path / "gen").exists()
    (t,) = est["teachers"]
    assert t["worst_case"] and t["token_counter"] == "estimate_tokens"
    assert t["input_tokens"] == 10 * 8 + 6 * 15
    assert t["output_tokens_p50"] == t["output_tokens_p90"] == t["output_tokens"] == \
        10 * 50 + 6 * 4
    assert t["cost_usd"] == t["cost_usd_p90"] == pytest.approx((170 + 2 * 524) / 1e6)
    assert t["dry_run_requests"] == 0 and t["dry_run_cost_usd"] is None
    assert any("worst case" in n for n in t["notes"])


def test_local_teacher_tokenizer_and_zero_cost(tmp_path):
    from tests.tiny_models import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    prompts = [Prompt(id=f"q{i}", messages=[{"role": "user", "content": "tell me a story"}])
               for i in range(3)]
    est = estimate_stage("gen", [PlannedCall("answers", 3, prompts)],
                         [TeacherRoute(f"local:{model}")],
                         {"progress": False, "max_tokens": 5, "accept_terms": ("unknown",)},
                         out=tmp_path / "gen",
                         dry_run=3)
    (t,) = est["teachers"]
    assert t["token_counter"] == "tokenizer" and t["input_calibration"] is None
    # the tokenizer's count is what the local teacher itself reports
    rows = pq.read_table(f"{t['dry_run_dir']}/traces.parquet").to_pylist()
    assert len(rows) == 3 and t["input_tokens"] == sum(r["input_tokens"] for r in rows)
    assert t["cost_usd"] == 0.0 and t["batch_cost_usd"] is None
    assert "local teacher" in t["batch_reason"]
    assert all(1 <= n <= 5 for n in t["dry_run_output_tokens"])


# ---------------------------------------------------------------------------- break-even


BASE = dict(distil_cost_usd=100.0, train_cost_usd=50.0, teacher_cost_per_request=0.01,
            student_cost_per_hour=2.0, student_requests_per_hour=1000.0)


def test_break_even_hand_computed():
    be = break_even(requests_per_day=10_000, **BASE)
    # teacher 10k × 0.01 = 100/day; student 10 h × $2 = 20 (pay per use), one instance
    # 24 h × $2 = 48 (always on); one-time 150
    assert be["teacher_per_day_usd"] == pytest.approx(100.0)
    assert be["student_per_day_usd"] == pytest.approx({"pay_per_use": 20.0, "always_on": 48.0})
    assert be["one_time_usd"] == pytest.approx(150.0)
    assert be["break_even_days"]["pay_per_use"] == pytest.approx(150 / 80)
    assert be["break_even_days"]["always_on"] == pytest.approx(150 / 52)
    assert [r["requests_per_day"] for r in be["table"]] == list(BREAK_EVEN_TABLE)
    top = be["table"][-1]  # 100k/day: 100 h → 5 instances always on
    assert top["student_instances"] == 5
    assert top["student_per_day_usd"] == pytest.approx({"pay_per_use": 200.0,
                                                        "always_on": 240.0})
    assert top["break_even_days"]["always_on"] == pytest.approx(150 / 760)
    low = be["table"][0]  # 100/day: teacher $1/day < $48 always on, > $0.20 pay per use
    assert low["break_even_days"]["always_on"] == "never"
    assert low["break_even_days"]["pay_per_use"] == pytest.approx(150 / 0.8)


def test_break_even_never_and_bad_inputs():
    be = break_even(requests_per_day=100, **{**BASE, "teacher_cost_per_request": 0.002})
    # teacher $0.20/day = student pay per use $0.20/day: not cheaper, never
    assert be["break_even_days"] == {"pay_per_use": "never", "always_on": "never"}
    with pytest.raises(ValueError, match="student_requests_per_hour"):
        break_even(requests_per_day=100, **{**BASE, "student_requests_per_hour": 0})
    with pytest.raises(ValueError, match="requests_per_day"):
        break_even(requests_per_day=-1, **BASE)


def test_summarise_fills_break_even_from_the_estimate(server, tmp_path, price_file):
    server.responder = words
    calls = [PlannedCall("answers", 10, answer_prompts(range(1, 11)))]
    est = estimate_stage("gen", calls, [TeacherRoute("openai:gpt-test")],
                         opts(server, price_file), out=tmp_path / "gen", dry_run=10)
    s = summarise([est], break_even_args={"requests_per_day": 1000, "dry_run": 10,
                                          "student_cost_per_hour": 0.0001,
                                          "student_requests_per_hour": 1000})
    be = s["break_even"]
    cost = (50 + 2 * 55) / 1e6
    assert be["inputs"]["distil_cost_usd"] == pytest.approx(cost)
    assert be["inputs"]["teacher_cost_per_request"] == pytest.approx(cost / 10)
    # teacher 1000 × 16e-6 = 0.016/day; student 1 h × 0.0001 = 0.0001/day
    assert be["break_even_days"]["pay_per_use"] == pytest.approx(cost / (0.016 - 0.0001),
                                                                 rel=1e-4)
    assert be["break_even_days"]["always_on"] == pytest.approx(cost / (0.016 - 0.0024),
                                                               rel=1e-4)
    text = format_estimate(s)
    assert "break-even" in text and "(yours)" in text


# ---------------------------------------------------------------------------- the text


def test_the_text_is_made_from_the_data_alone():
    """The numbers are data (estimate.json); the terminal text is a function of them: the
    same data read back from JSON prints the same, with no teacher, server or file."""
    entry = dict.fromkeys(STAGE_KEYS)
    a = {**entry, "stage": "gen", "teacher": "openai:a", "requests": 10, "input_tokens": 100,
         "output_tokens_p50": 50, "output_tokens_p90": 80, "output_tokens": 60,
         "cost_usd": 0.5, "cost_usd_p90": 0.8, "batch_cost_usd": 0.25,
         "dry_run_requests": 2, "dry_run_cost_usd": 0.1, "token_counter": "estimate_tokens",
         "notes": ["a note"]}
    b = {**a, "teacher": "relay:b", "requests": 5, "input_tokens": None,
         "cost_usd": None, "cost_usd_p90": None, "batch_cost_usd": None,
         "token_counter": "tokenizer", "notes": ["a note", "no price"]}
    est = {"stages": [a, b], "total_cost_usd": 0.5, "total_cost_usd_p90": 0.8,
           "total_batch_cost_usd": 0.25,
           "break_even": break_even(requests_per_day=1000, **BASE)}
    text = format_estimate(est)
    assert format_estimate(json.loads(json.dumps(est))) == text
    lines = text.splitlines()
    total = next(x for x in lines if x.startswith("total")).split()
    # requests and output tokens add up; unknown input tokens count as nothing
    assert total[1:5] == ["15", "100", "100", "160"] and total[5:7] == ["$0.5000", "$0.8000"]
    assert "input tokens counted with: estimate_tokens, tokenizer" in lines
    assert "  gen / openai:a: a note" in lines and "  gen / relay:b: no price" in lines
    assert any(x.startswith("1,000") and "(yours)" in x for x in lines)
    missing = {**est, "break_even": {"missing": ["student_cost_per_hour"], "reason": "why"}}
    assert format_estimate(missing).rstrip().endswith("break-even: not computed: why")


def test_the_package_keeps_its_entry_points():
    import synth
    import synth.pipeline
    from synth.pipeline import estimate

    assert set(estimate.__all__) == {"estimate_pipeline", "estimate_stage", "break_even",
                                     "summarise", "format_estimate", "BREAK_EVEN_TABLE",
                                     "STAGE_KEYS"}
    for name in estimate.__all__:
        assert getattr(estimate, name) is not None
    assert callable(synth.pipeline.estimate_pipeline) and callable(synth.estimate)
