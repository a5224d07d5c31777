"""The llm_judge step over real HTTP to the loopback provider server, and the templates it
renders. A row's response carries a ``[[reply:...]]`` marker, which the judge template
passes into the judge request, so the fake teacher answers what each test needs."""

import hashlib
import json
import textwrap
from importlib import resources

import polars as pl
import pyarrow.parquet as pq
import pytest

import synth.curate.judge  # noqa: F401  (registers llm_judge)
from synth.curate import curate
from synth.curate.judge import LLMJudge, parse_verdict
from synth.errors import InputError, LicenceDeniedError
from synth.templates import load_template, parse_template, template_names

SLUG = "openai-gpt-test-judge-quality"


def reply(obj) -> str:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return f"Some answer. [[reply:{text}]]"


def rows(*responses, **cols):
    n = len(responses)
    base = {"id": [f"r{i}" for i in range(n)], "response": list(responses),
            "status": ["ok"] * n,
            "messages": [[{"role": "user", "content": f"question {i}"}] for i in range(n)]}
    base.update(cols)
    return pl.DataFrame(base)


def judge(server, **kw):
    kw.setdefault("teacher", "openai:gpt-test")
    kw.setdefault("intent", "research")
    return LLMJudge(base_url=f"{server.url}/v1", **kw)


def filter_set(tmp_path, server, price_file=None, **params):
    params = {"teacher": "openai:gpt-test", "intent": "research",
              "base_url": f"{server.url}/v1", **params}
    if price_file is not None:
        params["price_file"] = str(price_file)
    p = tmp_path / "judge.yaml"
    p.write_text("name: judged\nsteps:\n  - drop_errors\n"
                 f"  - llm_judge: {json.dumps(params)}\n")
    return p


def test_scores_parsed_and_columns_added(server, tmp_path):
    df = rows(reply({"score": 5, "reason": "Correct and clear."}),
              reply("Looks fine overall.\nScore: 3"),
              reply('Format is {"score": 1, "reason": "..."}; mine:\n'
                    '{"score": 4, "reason": "Minor gaps."}'),
              reply({"score": 2.5, "reason": "Half right."}))
    v = judge(server, workdir=str(tmp_path / "j"))(df)
    assert v.df["judge_score"].to_list() == [5.0, 3.0, 4.0, 2.5]
    assert v.df["judge_reason"].to_list() == ["Correct and clear.", None, "Minor gaps.",
                                              "Half right."]
    assert v.df["judge_teacher"].to_list() == ["openai:gpt-test"] * 4
    assert v.df.schema["judge_score"] == pl.Float64
    assert v.df.schema["judge_reason"] == pl.String
    assert v.drop.to_list() == [None] * 4  # min_score None: score only
    assert server.n_requests == 4
    # the judge's own run: one row per judged row, made from the template
    t = load_template("judge/quality")
    traces = pq.read_table(tmp_path / "j" / "traces.parquet").to_pylist()
    assert [r["prompt_id"] for r in traces] == ["r0", "r1", "r2", "r3"]
    assert {(r["template_id"], r["template_hash"]) for r in traces} == {(t.id, t.hash)}
    msgs = traces[1]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "<instruction>\nquestion 1\n</instruction>" in msgs[1]["content"]
    assert "Score: 3" in msgs[1]["content"] and "<reference>" not in msgs[1]["content"]


def test_reference_reaches_the_judge(server, tmp_path):
    df = rows(reply({"score": 4}), reference=["the answer is 7"])
    judge(server, workdir=str(tmp_path / "j"))(df)
    user = pq.read_table(tmp_path / "j" / "traces.parquet").to_pylist()[0]["messages"][1]
    assert "<reference>\nthe answer is 7\n</reference>" in user["content"]


def test_min_score_drops_through_a_filter_set(server, tmp_path, price_file):
    df = rows(reply({"score": 5, "reason": "a"}), reply({"score": 2, "reason": "b"}),
              reply({"score": 3, "reason": "c"}), None,
              status=["ok", "ok", "ok", "error"])
    out = tmp_path / "cur"
    res = curate(df, filters=filter_set(tmp_path, server, price_file, min_score=3), out=out)
    assert sorted(res.kept["id"].to_list()) == ["r0", "r2"]
    rej = {r["id"]: (r["dropped_by"], r["drop_reason"]) for r in res.rejected.to_dicts()}
    assert rej == {"r1": ("llm_judge", "judge: 2 < 3"), "r3": ("drop_errors", "error ")}
    assert sorted(res.kept["id"].to_list() + res.rejected["id"].to_list()) == \
        sorted(df["id"].to_list())
    step = res.summary["steps"][1]
    assert step["reasons"] == {"judge": 1}
    info = step["info"]["judge"]
    assert info["requests"] == 3 and info["sent"] == 3 and info["from_cache"] == 0
    assert info["cost_usd"] > 0 and info["tokens"]["output"] > 0
    # the judge's run sits with the curation outputs; curation.json carries the summary
    run = out / "judge" / SLUG
    assert info["run_dir"] == str(run) and (run / "traces.parquet").exists()
    assert (run / "cache.sqlite").exists() and (run / "README.md").exists()
    saved = json.loads((out / "curation.json").read_text())
    assert saved["steps"][1]["info"]["judge"]["requests"] == 3
    report = (out / "report.html").read_text()
    assert "judge: teacher openai:gpt-test, template judge/quality" in report
    assert "requests 3, from_cache 0, sent 3" in report


def test_unparseable_and_out_of_range_are_unscored(server, tmp_path):
    df = rows(reply("I would rather not grade this."), reply({"score": 7, "reason": "x"}),
              reply({"score": "four"}), reply({"score": 0}), reply("Score: 9"),
              reply({"score": 4, "reason": "ok"}))
    why = [None, "no score in the answer", "score out of range: 7",
           'score is not a number: "four"', "score out of range: 0",
           "score out of range: 9", "ok"]
    kept = judge(server, workdir=str(tmp_path / "j"), min_score=3)(df)
    assert kept.df["judge_score"].to_list() == [None] * 5 + [4.0]
    assert kept.df["judge_reason"].to_list() == why[1:]
    assert kept.drop.to_list() == [None] * 6  # never scored means never judged low
    dropped = judge(server, workdir=str(tmp_path / "j"), min_score=3, drop_unscored=True)(df)
    assert dropped.drop.to_list() == [f"unscored: {w}" for w in why[1:6]] + [None]
    assert server.n_requests == 6  # the second step found every answer in the cache


def test_faults_are_retried_and_failures_unscored(server, tmp_path):
    df = rows(reply({"score": 5}) + " [[fault:500*1]]",
              reply({"score": 4}) + " [[fault:429*2 retry_after=0.01]]",
              reply({"score": 3}) + " [[fault:400]]")
    v = judge(server, workdir=str(tmp_path / "j"), drop_unscored=True)(df)
    assert v.df["judge_score"].to_list() == [5.0, 4.0, None]
    assert v.df["judge_reason"][2] == "judge request failed (http_400)"
    assert v.drop.to_list() == [None, None, "unscored: judge request failed (http_400)"]
    assert server.n_requests == 2 + 3 + 1
    summary = json.loads((tmp_path / "j" / "run.json").read_text())
    assert summary["status"] == {"ok": 2, "error": 1}


def test_rerun_sends_nothing(server, tmp_path):
    df = rows(reply({"score": 5}), reply({"score": 1}))
    fs = filter_set(tmp_path, server, min_score=2)
    first = curate(df, filters=fs, out=tmp_path / "cur")
    assert server.n_requests == 2
    second = curate(df, filters=fs, out=tmp_path / "cur")
    assert server.n_requests == 2  # every answer from the cache in cur/judge/
    info = second.summary["steps"][1]["info"]["judge"]
    assert (info["sent"], info["from_cache"]) == (0, 2)
    assert second.kept.equals(first.kept) and second.rejected["drop_reason"].to_list() == [
        "judge: 1 < 2"]


def test_default_run_dir_without_out(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_CACHE_DIR", str(tmp_path / "cache"))
    df = rows(reply({"score": 5}))
    curate(df, filters=filter_set(tmp_path, server))
    curate(df, filters=filter_set(tmp_path, server))
    assert (tmp_path / "cache" / "judge" / SLUG / "cache.sqlite").exists()
    assert server.n_requests == 1


async def test_works_inside_a_running_event_loop(server, tmp_path):
    v = judge(server, workdir=str(tmp_path / "j"))(rows(reply({"score": 4})))
    assert v.df["judge_score"].to_list() == [4.0]


def test_licence_deny_raises_before_any_request(server, tmp_path):
    fs = filter_set(tmp_path, server, teacher="openai:gpt-4o-mini", intent="competing")
    with pytest.raises(LicenceDeniedError, match="may not teach for intent 'competing'"):
        curate(rows(reply({"score": 5})), filters=fs, out=tmp_path / "cur")
    assert server.n_requests == 0
    assert not (tmp_path / "cur").exists()


@pytest.mark.parametrize("params, needle", [
    ({"intent": "research"}, "teacher"),
    ({"teacher": "opneai:gpt-test", "intent": "research"}, "unknown provider"),
    ({"teacher": "openai:gpt-test"}, "intent is required for API teachers"),
    ({"teacher": "openai:gpt-test", "intent": "fun"}, "intent must be one of"),
    ({"teacher": "openai:gpt-test", "intent": "research", "min_score": 9}, "min_score"),
    ({"teacher": "openai:gpt-test", "intent": "research", "max_tokens": 0}, "max_tokens"),
    ({"teacher": "openai:gpt-test", "intent": "research", "max_tokens": True}, "max_tokens"),
    ({"teacher": "openai:gpt-test", "intent": "research", "concurrency": 2.0}, "concurrency"),
    ({"teacher": "openai:gpt-test", "intent": "research", "temperature": True}, "temperature"),
    ({"teacher": "openai:gpt-test", "intent": "research", "template": "judge/nope"},
     "no such template"),
    ({"teacher": "openai:gpt-test", "intent": "research", "temprature": 0},
     "unknown parameter(s) temprature"),
])
def test_bad_filter_set_params_name_file_line_step(tmp_path, params, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(f"name: bad\nsteps:\n  - empty\n  - llm_judge: {json.dumps(params)}\n")
    with pytest.raises(InputError) as exc:
        curate(rows("x"), filters=p)
    e = exc.value
    assert (e.path, e.line, e.field) == (str(p), 4, "llm_judge")
    assert needle in str(e)


def test_parse_verdict():
    assert parse_verdict('```json\n{"score": 4, "reason": " fine "}\n```') == (4.0, "fine")
    assert parse_verdict('{"verdict": {"score": 2}}') == (2.0, None)
    assert parse_verdict("**Score:** 4/5") == (4.0, None)
    assert parse_verdict("Score: 4\nThanks!") == (None, "no score in the answer")
    assert parse_verdict('{"score": true}')[0] is None
    assert parse_verdict('{"score": NaN}')[0] is None
    assert parse_verdict("") == (None, "empty answer")
    assert parse_verdict('{"score": 8}', 1, 10) == (8.0, None)


# ------------------------------------------------------------------------------ templates


def write(tmp_path, text, name="t.j2"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


GOOD = """\
    ---
    id: test/greet
    description: Greets.
    version: 2
    variables: [name]
    optional: [title]
    system: Talk to {{ name }}.
    ---
    Hello {% if title %}{{ title }} {% endif %}{{ name }}!
    """


def test_template_render_id_hash_round_trip(tmp_path):
    p = write(tmp_path, GOOD)
    t = load_template(p)
    assert (t.id, t.version, t.variables, t.optional) == ("test/greet", "2", ("name",),
                                                          ("title",))
    assert t.hash == hashlib.sha256(p.read_bytes()).hexdigest()
    assert t.render(name="Ada", unused=1) == [
        {"role": "system", "content": "Talk to Ada."},
        {"role": "user", "content": "Hello Ada!"}]
    assert t.render(name="Ada", title="Dr")[1]["content"] == "Hello Dr Ada!"
    assert load_template(str(p)).hash == t.hash
    p.write_text(p.read_text().replace("version: 2", "version: 3"))
    assert load_template(p).hash != t.hash
    shipped = load_template("judge/quality")
    raw = (resources.files("synth") / "prompts" / "judge" / "quality.j2").read_bytes()
    assert shipped.hash == hashlib.sha256(raw).hexdigest() and shipped.id == "judge/quality"
    assert shipped.meta == {"score_range": [1, 5]} and "judge/quality" in template_names()
    user = shipped.render(prompt="Q?", response="A.")[1]["content"]
    assert user.rstrip().endswith('{"score": <integer 1-5>, "reason": "<one sentence>"}')


def test_missing_variable_names_file_line_field(tmp_path):
    t = load_template(write(tmp_path, GOOD))
    with pytest.raises(InputError) as exc:
        t.render(title="Dr")
    assert (exc.value.path, exc.value.line, exc.value.field) == (str(tmp_path / "t.j2"), 5,
                                                                 "name")


@pytest.mark.parametrize("text, line, field, needle", [
    ("Hello\n", 1, None, "must start with a '---' line"),
    ("---\nid: x\n", 1, None, "not closed"),
    ("---\nid: [x\n---\nbody\n", 3, None, "not valid YAML"),
    ("---\ndescription: d\nversion: 1\nvariables: []\n---\nbody\n", 2, "id", "missing"),
    ("---\nid: x\ndescription: d\nversion: 1\nvariables: name\n---\nb\n", 5, "variables",
     "list of variable names"),
    ("---\nid: x\ndescription: d\nversion: 1\nvariables: [a]\n---\nline\n{{ a }} {{ b }}\n",
     8, "body", "uses 'b'"),
    ("---\nid: x\ndescription: d\nversion: 1\nvariables: [a]\n---\n\n{% if a %}\n", 8,
     "body", "Jinja2 syntax error"),
    ("---\nid: x\ndescription: d\nversion: 1\nvariables: [a]\nsystem: 7\n---\nb\n", 6,
     "system", "must be a string"),
    ("---\nid: x\ndescription: d\nversion: 1\nvariables: [a]\n---\n\n", 7, "body", "empty"),
])
def test_bad_templates_name_file_line_field(tmp_path, text, line, field, needle):
    with pytest.raises(InputError) as exc:
        parse_template(text, path="my.j2")
    e = exc.value
    assert (e.path, e.line, e.field) == ("my.j2", line, field)
    assert needle in str(e) and str(e).startswith("my.j2:")


def test_render_errors_and_sandbox_name_the_line(tmp_path):
    text = "---\nid: x\ndescription: d\nversion: 1\nvariables: [a]\n---\nok\n{{ a.nope }}\n"
    with pytest.raises(InputError) as exc:
        parse_template(text, path=str(tmp_path / "x.j2")).render(a="s")
    assert exc.value.line == 8 and exc.value.field == "body"
    text = "---\nid: x\ndescription: d\nversion: 1\nvariables: [a]\n---\n{{ a.__class__ }}\n"
    with pytest.raises(InputError, match="render failed"):
        parse_template(text, path="y.j2").render(a="s")


def test_unknown_template_name_lists_the_shipped_ones():
    with pytest.raises(InputError, match="shipped: .*judge/quality"):
        load_template("judge/nope")
    with pytest.raises(InputError, match="no such template file"):
        load_template("missing/file.j2")


def test_score_range_comes_from_the_template(tmp_path, server):
    p = write(tmp_path, """\
        ---
        id: test/ten
        description: 1-10 judge
        version: 1
        variables: [prompt, response]
        score_range: [1, 10]
        ---
        {{ prompt }} => {{ response }}
        """)
    v = judge(server, template=str(p), min_score=6, workdir=str(tmp_path / "j"))(
        rows(reply({"score": 8}), reply({"score": 5})))
    assert v.df["judge_score"].to_list() == [8.0, 5.0]
    assert v.drop.to_list() == [None, "judge: 5 < 6"]
    with pytest.raises(ValueError, match=r"min_score must be a number in \[1, 10\]"):
        judge(server, template=str(p), min_score=11)


def test_cli_prints_the_judge_summary(server, tmp_path):
    import subprocess
    import sys

    rows(reply({"score": 4, "reason": "ok"}), reply("no verdict here")).write_parquet(
        tmp_path / "t.parquet")
    args = [sys.executable, "-m", "synth", "curate", str(tmp_path / "t.parquet"), "--filters",
            str(filter_set(tmp_path, server, min_score=3)), "--out", str(tmp_path / "cur")]
    for cached in (0, 2):  # the rerun is answered from the judge's cache
        p = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert f"judge: 2 requests ({cached} cached, 0 failed), 1 unscored" in p.stderr
    assert server.n_requests == 2
