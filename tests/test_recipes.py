"""The generation recipes responses, cot and textbook, end to end against the loopback
provider server (real HTTP, scripted with ``server.responder``)."""

import json
import re

import pytest
from pydantic import ValidationError

from synth.errors import ConfigError, InputError
from synth.recipes.base import TeacherRoute, Teaching, get_recipe
from synth.recipes.cot import split_answer
from synth.recipes.textbook import parse_subtopics, plan_cells
from synth.templates import load_template

FAST = dict(progress=False, retry_initial_delay=0.01, max_retries=0, intent="research",
            accept_terms=("unknown",))


@pytest.fixture
def teach(server, tmp_path, price_file):
    """A Teaching against the loopback server; the same name reuses the same cache."""
    def make(name="stage", **opts):
        route = TeacherRoute("openai:gpt-test", options={"base_url": server.url + "/v1"})
        return Teaching([route], {**FAST, "price_file": price_file, **opts}, tmp_path / name)
    return make


def recipe(name):
    cls = get_recipe(name)
    return cls(), cls.Params


def meta(row):
    return json.loads(row["metadata"])


def scripted(answers):
    """A responder giving, for the prompt whose text contains KEY, answers[KEY][i] on its
    i-th request (requests of one prompt arrive in sample order at concurrency 1)."""
    seen = {}

    def respond(text, body):
        for key, outs in answers.items():
            if key in text:
                i = seen.get(key, 0)
                seen[key] = i + 1
                return outs[i % len(outs)]
        return None
    return respond


# ---------------------------------------------------------------------------- responses


def test_responses_rows_keep_reference_and_metadata(server, teach, tmp_path, prompts_file):
    src = prompts_file([{"id": "q1", "prompt": "what is two plus two", "reference": "4",
                         "metadata": {"src": "t"}},
                        {"id": "q2", "prompt": "say hi", "system": "Be brief."}])
    r, P = recipe("responses")
    res = r.run(P(input=str(src)), teach(), base_dir=tmp_path)
    assert [x["id"] for x in res.rows] == ["q1:0", "q2:0"]
    a, b = res.rows
    assert a["response"] == "Echo: what is two plus two" and a["reference"] == "4"
    assert meta(a) == {"src": "t"} and a["template_id"] is None
    assert b["messages"][0] == {"role": "system", "content": "Be brief."}
    assert res.rejects == []
    assert res.info == {"prompts": 2, "samples": 1, "requests": 2, "answered": 2,
                        "failed": 0, "empty": 0, "unrouted": 0, "template": None}
    assert server.n_requests == 2


def test_responses_template_rows_and_cache(server, teach, tmp_path):
    (tmp_path / "wrap.j2").write_text(
        "---\nid: test/wrap\ndescription: wrap\nversion: 1\nvariables: [prompt]\n"
        "optional: [reference, topic]\n---\n"
        "Q: {{ prompt }}{% if topic %} (about {{ topic }}){% endif %}\n")
    r, P = recipe("responses")
    params = P(prompts=["alpha", {"id": "b", "prompt": "beta", "reference": "B",
                                  "metadata": {"topic": "greek"}, "system": "Sys."}],
               template="wrap.j2", samples=2)
    res = r.run(params, teach(), base_dir=tmp_path)
    assert len(res.rows) == 4 and server.n_requests == 4
    t = load_template(tmp_path / "wrap.j2")
    by_id = {}
    for row in res.rows:
        by_id.setdefault(row["prompt_id"], []).append(row)
        assert row["template_id"] == "test/wrap" and row["template_hash"] == t.hash
    b = [rows for pid, rows in by_id.items() if pid.startswith("b-")][0][0]
    assert b["response"] == "Echo: Q: beta (about greek)"
    assert b["messages"][0] == {"role": "system", "content": "Sys."}  # the line's own
    assert b["reference"] == "B"
    assert meta(b) == {"template_id": "test/wrap", "template_hash": t.hash, "topic": "greek",
                       "source_id": "b"}  # the held-out split keys on the input prompt
    assert res.info["template"] == "test/wrap" and res.info["requests"] == 4
    # a rerun is free
    server.reset()
    again = r.run(params, teach(), base_dir=tmp_path)
    assert server.n_requests == 0
    assert [x["id"] for x in again.rows] == [x["id"] for x in res.rows]
    assert [x["response"] for x in again.rows] == [x["response"] for x in res.rows]


def test_changed_template_reasks_only_changed_prompts(server, teach, tmp_path):
    head = ("---\nid: test/t\ndescription: d\nversion: 1\nvariables: [prompt]\n"
            "optional: [kind]\n---\n")
    tpl = tmp_path / "t.j2"
    tpl.write_text(head + "Q: {{ prompt }}\n")
    r, P = recipe("responses")
    params = P(prompts=[{"prompt": "one"}, {"prompt": "two", "metadata": {"kind": "long"}},
                        {"prompt": "three"}], template="t.j2")
    first = r.run(params, teach(), base_dir=tmp_path)
    assert server.n_requests == 3
    tpl.write_text(head + "{% if kind == 'long' %}At length. {% endif %}Q: {{ prompt }}\n")
    server.reset()
    second = r.run(params, teach(), base_dir=tmp_path)
    assert server.n_requests == 1  # only "two" renders differently
    assert [x["response"] for x in second.rows] == ["Echo: Q: one",
                                                    "Echo: At length. Q: two",
                                                    "Echo: Q: three"]
    new_hash = load_template(tpl).hash
    assert {x["template_hash"] for x in second.rows} == {new_hash}
    assert new_hash not in {x["template_hash"] for x in first.rows}


def test_responses_failed_and_empty_answers_are_rejected(server, teach, tmp_path):
    server.responder = lambda text, body: "" if "blank" in text else None
    r, P = recipe("responses")
    res = r.run(P(prompts=["fine", "[[fault:400]] broken", "blank please"]), teach(),
                base_dir=tmp_path)
    assert [x["response"] for x in res.rows] == ["Echo: fine"]
    reasons = [x["drop_reason"] for x in res.rejects]
    assert reasons[0].startswith("failed: ") and "400" in reasons[0]
    assert reasons[1] == "empty: the answer is empty"
    assert {x["dropped_by"] for x in res.rejects} == {"responses"}
    assert res.info["failed"] == 1 and res.info["empty"] == 1 and res.info["answered"] == 1


def test_responses_plan_matches_run(server, teach, tmp_path):
    r, P = recipe("responses")
    params = P(prompts=["a", "b", "c"], template="responses/answer", samples=3,
               max_tokens=64)
    [call] = r.plan(params, base_dir=tmp_path)
    assert (call.name, call.requests, call.max_tokens) == ("answer", 9, 64)
    assert call.prompts[0].messages[0]["role"] == "system"  # rendered, system included
    assert call.prompts[0].messages[1]["content"] == "a"
    assert server.n_requests == 0
    res = r.run(params, teach(), base_dir=tmp_path)
    assert [p.id for p in call.prompts] == list(dict.fromkeys(x["prompt_id"]
                                                              for x in res.rows))
    assert server.n_requests == 9
    assert {x["params"]["max_tokens"] for x in res.rows} == {64}


def test_responses_bad_params(tmp_path):
    r, P = recipe("responses")
    with pytest.raises(ValidationError, match="exactly one of input"):
        P()
    with pytest.raises(ValidationError, match="exactly one of input"):
        P(input="a.jsonl", prompts=["x"])
    with pytest.raises(ValidationError, match="samples"):
        P(prompts=["x"], samples="2")  # strict: not coerced
    with pytest.raises(ValidationError, match="Extra inputs"):
        P(prompts=["x"], sample=2)
    with pytest.raises(InputError, match="no such file"):
        r.plan(P(input="missing.jsonl"), base_dir=tmp_path)
    with pytest.raises(InputError, match=r"prompts:2: field 'id': repeats item 1"):
        r.plan(P(prompts=["x", "x"]), base_dir=tmp_path)
    with pytest.raises(InputError, match="no such template"):
        r.plan(P(prompts=["x"], template="nope/none"), base_dir=tmp_path)
    (tmp_path / "fixed.j2").write_text(
        "---\nid: t/f\ndescription: d\nversion: 1\nvariables: []\n---\nHello\n")
    with pytest.raises(ConfigError, match=r"template: .*fixed.j2 does not use \{\{ prompt"):
        r.plan(P(prompts=["x"], template="fixed.j2"), base_dir=tmp_path)
    convo = {"messages": [{"role": "user", "content": "a"},
                          {"role": "assistant", "content": "b"},
                          {"role": "user", "content": "c"}]}
    with pytest.raises(InputError, match="conversation of 3 messages"):
        r.plan(P(prompts=[convo], template="responses/answer"), base_dir=tmp_path)


# ---------------------------------------------------------------------------- cot

COT_CASES = [
    # key, reference, the four samples' answers
    ("add", "What is 6+7?", "13", [
        "6+6=12, one more.\n\\boxed{13}",
        "\\boxed{12}",
        "So it is \\boxed{12 \\text{ or } 13}",                  # hedged
        "First \\boxed{12}.\nNo wait:\n\\boxed{13}",             # two boxed answers
    ]),
    ("mul", "What is 3*4?", "12", [
        "<think>3*4 = \\boxed{12}</think>The answer is in my notes.",  # only in reasoning
        "3 times 4 is 12",                                       # no boxed answer
        "\\boxed{}",                                             # empty box
        "Three fours.\n\\boxed{12}\n",
    ]),
    ("prime", "Pick a prime below 4.", None, [
        "\\boxed{3}", "\\boxed{3}", "\\boxed{2}", "I think\n\\boxed{3}"]),
    ("colour", "Pick a colour.", None, [
        "\\boxed{red}", "\\boxed{blue}", "\\boxed{red}", "\\boxed{blue}"]),
    ("capital", "Capital of France?", "Paris", [
        "\\boxed{Paris}", "It is\n\\boxed{paris}", "\\boxed{Lyon}", "\\boxed{Sirap}"]),
    ("code", "Write add(a, b) returning the sum.",
     json.dumps({"test_list": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]}), [
         "Easy.\n```python\ndef add(a, b):\n    return a + b\n```",
         "```python\ndef add(a, b):\n    return a - b\n```",
         "Just add them.",
         "```python\ndef add(a, b):\n    return 3\n```"]),
]

EXPECTED = {  # (key, sample) -> (verdict, drop reason or None when kept)
    ("add", 0): ("correct", None),
    ("add", 1): ("wrong", "wrong: got 12, expected 13"),
    ("add", 2): ("wrong", "wrong: hedged: the answer offers alternatives "
                 "('12 \\\\text{ or } 13')"),
    ("add", 3): ("wrong", "wrong: hedged: 2 different boxed answers (12, 13)"),
    ("mul", 0): ("unverifiable", "unverifiable: no final answer in the response (only in "
                 "the reasoning)"),
    ("mul", 1): ("unverifiable", "unverifiable: no final answer"),
    ("mul", 2): ("unverifiable", "unverifiable: no final answer"),
    ("mul", 3): ("correct", None),
    ("prime", 0): ("majority", None),
    ("prime", 1): ("majority", None),
    ("prime", 2): ("minority", "minority: 1 of 4 agree"),
    ("prime", 3): ("majority", None),
    ("colour", 0): ("minority", "minority: 2 of 4 agree (tied with another answer)"),
    ("colour", 1): ("minority", "minority: 2 of 4 agree (tied with another answer)"),
    ("colour", 2): ("minority", "minority: 2 of 4 agree (tied with another answer)"),
    ("colour", 3): ("minority", "minority: 2 of 4 agree (tied with another answer)"),
    ("capital", 0): ("correct", None),
    ("capital", 1): ("correct", None),
    ("capital", 2): ("wrong", "wrong: got Lyon, expected Paris"),
    ("capital", 3): ("wrong", "wrong: got Sirap, expected Paris"),
    ("code", 0): ("correct", None),
    ("code", 1): ("wrong", None),
    ("code", 2): ("unverifiable", "unverifiable: no code block"),
    ("code", 3): ("wrong", None),
}


def _cot_params(P, **kw):
    prompts = [{"prompt": f"[{key}] {text}", "metadata": {"key": key},
                **({"reference": ref} if ref is not None else {})}
               for key, text, ref, _ in COT_CASES]
    return P(prompts=prompts, **kw)


def test_cot_rejection_sampling(server, teach, tmp_path):
    server.responder = scripted({f"[{k}]": outs for k, _, _, outs in COT_CASES})
    r, P = recipe("cot")
    params = _cot_params(P)
    res = r.run(params, teach(concurrency=1), base_dir=tmp_path)
    assert server.n_requests == 24
    got = {}
    for row in res.rows:
        m = meta(row)
        got[(m["key"], row["sample_index"])] = (m["verdict"], None)
    for row in res.rejects:
        m = meta(row)
        assert row["dropped_by"] == "cot_verify"
        got[(m["key"], row["sample_index"])] = (m["verdict"], row["drop_reason"])
    for key, (verdict, reason) in EXPECTED.items():
        assert got[key][0] == verdict, key
        if reason is not None or verdict in ("correct", "majority"):
            assert got[key][1] == reason, key
    code_wrong = [row["drop_reason"] for row in res.rejects
                  if meta(row)["key"] == "code" and meta(row)["verdict"] == "wrong"]
    assert len(code_wrong) == 2 and all(x.startswith("wrong: AssertionError")
                                        for x in code_wrong)
    # the kept rows: final answer, check, template ids; the reasoning / response split
    by_key = {(meta(x)["key"], x["sample_index"]): x for x in res.rows + res.rejects}
    add0 = by_key[("add", 0)]
    assert (add0["reasoning"], add0["response"]) == ("6+6=12, one more.", "\\boxed{13}")
    assert meta(add0)["final_answer"] == "13" and meta(add0)["check"] == "math"
    assert add0["template_id"] == "cot/solve"
    assert add0["template_hash"] == load_template("cot/solve").hash
    mul0 = by_key[("mul", 0)]
    assert (mul0["reasoning"], mul0["response"]) == ("3*4 = \\boxed{12}",
                                                     "The answer is in my notes.")
    mul3 = by_key[("mul", 3)]
    assert (mul3["reasoning"], mul3["response"]) == ("Three fours.", "\\boxed{12}")
    assert meta(by_key[("capital", 1)])["check"] == "exact"
    assert meta(by_key[("prime", 0)])["agreement"] == 0.75
    code0 = by_key[("code", 0)]
    assert (code0["reasoning"], meta(code0)["check"]) == ("Easy.", "code")
    assert meta(code0)["final_answer"] == "def add(a, b):\n    return a + b\n"
    assert "```python" in code0["messages"][-1]["content"]  # answer_format: code
    assert "\\boxed{ANSWER}" in add0["messages"][-1]["content"]
    assert "13" not in add0["messages"][-1]["content"]  # the reference is never shown
    acc = res.info["acceptance"]
    assert (acc["prompts"], acc["samples"], acc["accepted"]) == (6, 24, 8)
    assert acc["rate"] == round(8 / 24, 4) and acc["prompts_with_none"] == 1
    assert [(p["check"], p["accepted"], p["samples"]) for p in acc["per_prompt"]] == [
        ("math", 1, 4), ("math", 1, 4), ("majority", 3, 4), ("majority", 0, 4),
        ("exact", 2, 4), ("code", 1, 4)]
    assert res.info["verdicts"] == {"correct": 5, "wrong": 7, "unverifiable": 4,
                                    "majority": 3, "minority": 5}
    assert res.info["checks"] == {"math": 2, "majority": 2, "exact": 1, "code": 1}
    # a rerun sends nothing and decides the same
    server.reset()
    again = r.run(params, teach(concurrency=1), base_dir=tmp_path)
    assert server.n_requests == 0
    assert again.info == res.info
    assert [x["id"] for x in again.rows] == [x["id"] for x in res.rows]


def test_cot_agreement_failures_and_explicit_checks(server, teach, tmp_path):
    server.responder = scripted({"[low]": ["\\boxed{5}", "\\boxed{5}", "\\boxed{6}",
                                           "\\boxed{7}"],
                                 "[one]": ["\\boxed{9}"],
                                 "[ref]": ["\\boxed{4}", "\\boxed{4}", "\\boxed{4}",
                                           "\\boxed{1}"]})
    r, P = recipe("cot")
    res = r.run(P(prompts=["[low] q", {"prompt": "[ref] q", "reference": "1"}],
                  min_agreement=0.75, verify="majority"),
                teach("a", concurrency=1), base_dir=tmp_path)
    assert [x["drop_reason"] for x in res.rejects if "[low]" in x["messages"][-1]["content"]
            ] == ["minority: 2 of 4 agree (agreement 0.50 < min_agreement 0.75)"] * 2 + \
        ["minority: 1 of 4 agree"] * 2
    # verify: majority ignores the reference: 4 wins 3 of 4
    assert [meta(x)["final_answer"] for x in res.rows] == ["4", "4", "4"]
    assert res.info["acceptance"]["rate"] == 0.375
    # one sample cannot make a majority; a failed request is unverifiable, counted
    res = r.run(P(prompts=["[one] q", {"prompt": "[[fault:400]] q", "reference": "2"}],
                  samples=1), teach("b"), base_dir=tmp_path)
    assert res.rows == []
    reasons = [x["drop_reason"] for x in res.rejects]
    assert reasons[0] == "minority: 1 of 1 agree (a majority needs at least 2 agreeing " \
                         "samples)"
    assert reasons[1].startswith("unverifiable: request failed (") and "400" in reasons[1]
    assert res.info["verdicts"]["unverifiable"] == 1
    assert res.info["acceptance"]["prompts_with_none"] == 2


def test_cot_plan_and_bad_params(server, tmp_path):
    r, P = recipe("cot")
    [call] = r.plan(_cot_params(P, samples=3, max_tokens=900), base_dir=tmp_path)
    assert (call.name, call.requests, call.max_tokens, len(call.prompts)) == \
        ("solve", 18, 900, 6)
    assert "[add] What is 6+7?" in call.prompts[0].messages[-1]["content"]
    assert server.n_requests == 0
    for bad, match in [(dict(samples=0), "samples"), (dict(samples="4"), "samples"),
                       (dict(verify="fuzzy"), "verify"),
                       (dict(min_agreement=0), "min_agreement"),
                       (dict(verify="majority", samples=1), "majority needs samples >= 2")]:
        with pytest.raises(ValidationError, match=match):
            P(prompts=["x"], **bad)
    with pytest.raises(InputError, match=r"prompts:2: field 'reference': verify: math needs "
                                         "a reference"):
        r.plan(P(prompts=[{"prompt": "a", "reference": "1"}, "b"], verify="math"),
               base_dir=tmp_path)
    with pytest.raises(InputError, match="field 'reference': not usable as tests"):
        r.plan(P(prompts=[{"prompt": "a", "reference": {"tests": "x"}}]), base_dir=tmp_path)
    with pytest.raises(InputError, match="not usable as tests"):
        r.plan(P(prompts=[{"prompt": "a", "reference": "1"}], verify="code"),
               base_dir=tmp_path)


def test_split_answer():
    assert split_answer("a\nb\n\\boxed{1} done", None) == ("a\nb", "\\boxed{1} done",
                                                           "a\nb\n\\boxed{1} done")
    assert split_answer("\\boxed{1}", None) == (None, "\\boxed{1}", "\\boxed{1}")
    assert split_answer("no answer", None) == (None, "no answer", "no answer")
    assert split_answer("x \\boxed{1}", "thought") == ("thought", "x \\boxed{1}",
                                                       "x \\boxed{1}")
    text = "Plan.\n```\nsketch\n```\nThen:\n```python\ndef f():\n    return 1\n```\n"
    assert split_answer(text, None, code=True)[:2] == (
        "Plan.\n```\nsketch\n```\nThen:", "```python\ndef f():\n    return 1\n```")


# ---------------------------------------------------------------------------- textbook


def test_parse_subtopics():
    assert parse_subtopics("Here are three:\n1. **Motion**: how things move\n2) Energy.\n"
                           "3. energy\n4. Waves", 3) == ["Motion", "Energy", "Waves"]
    assert parse_subtopics("- Alpha\n* Beta\n• Gamma", 5) == ["Alpha", "Beta", "Gamma"]
    assert parse_subtopics('["A", "B", "A"]', 4) == ["A", "B"]
    assert parse_subtopics("Light\n\nSound\nHeat", 2) == ["Light", "Sound"]
    assert parse_subtopics("[]", 4) == [] and parse_subtopics("", 4) == []
    assert parse_subtopics("Subtopics:\n", 4) == []
    long = "Kinematics: " + "the study of motion without regard to forces " * 3
    assert parse_subtopics(f"1. {long}", 2) == ["Kinematics"]


TOPICS = "# seed topics\nPhysics\nBroken [[fault:400]]\n\nVoid\nArt\n"


def _textbook_responder(text, body):
    if "for a textbook chapter, as a numbered list" in text:
        topic = re.search(r'subtopics of "(.*)" for a textbook', text).group(1)
        return {"Physics": "Here are two:\n1. **Motion**: how things move\n2. Energy\n"
                           "3. Waves",
                "Void": "[]", "Art": "- Colour"}[topic]
    f = {k: re.search(rf"^{k}: (.*)$", text, re.M).group(1)
         for k in ("Topic", "Subtopic", "Audience", "Style", "Format")}
    if (f["Subtopic"], f["Audience"], f["Format"]) == ("Energy", "adults", "how-to"):
        return ""
    return f"{f['Format']} on {f['Subtopic']} for {f['Audience']}"


def test_textbook_grid_coverage_and_missing(server, teach, tmp_path):
    (tmp_path / "topics.txt").write_text(TOPICS)
    server.responder = _textbook_responder
    r, P = recipe("textbook")
    params = P(topics="topics.txt", subtopics=2, audiences=["kids", "adults"],
               styles=["fun"], formats=["story", "how-to"])
    calls = r.plan(params, base_dir=tmp_path)
    assert [(c.name, c.requests, len(c.prompts)) for c in calls] == \
        [("subtopics", 4, 4), ("write", 32, 32)]
    res = r.run(params, teach(), base_dir=tmp_path)
    assert server.n_requests == 4 + 12
    grid = res.info["grid"]
    assert grid["dims"] == {"topic": ["Physics", "Broken [[fault:400]]", "Void", "Art"],
                            "subtopic": {"Physics": ["Motion", "Energy"],
                                         "Broken [[fault:400]]": [], "Void": [],
                                         "Art": ["Colour"]},
                            "audience": ["kids", "adults"], "style": ["fun"],
                            "format": ["story", "how-to"]}
    assert grid["planned"] == 32 and len(grid["cells"]) == 32
    assert grid["cells"][:3] == [["Physics", "Motion", "kids", "fun", "story"],
                                 ["Physics", "Motion", "kids", "fun", "how-to"],
                                 ["Physics", "Motion", "adults", "fun", "story"]]
    assert grid["written"] == 11 and len(res.rows) == 11
    assert grid["coverage"] == round(11 / 32, 4)
    reasons = [(m["cell"][0], m["cell"][1], m["reason"]) for m in grid["missing"]]
    assert len(reasons) == 21
    assert reasons[0] == ("Physics", "Energy", "empty: the answer is empty")
    broken = [x for x in reasons if x[0].startswith("Broken")]
    assert len(broken) == 8 and all(x[1] is None for x in broken)
    assert sorted({m["slot"] for m in grid["missing"] if m["cell"][0].startswith("Broken")}) \
        == [1, 2]
    assert all(x[2].startswith("no subtopics: request failed: ") and "400" in x[2]
               for x in broken)
    assert [x[2] for x in reasons if x[0] == "Void"] == \
        ["no subtopics: the answer lists none"] * 8
    assert [x[2] for x in reasons if x[0] == "Art"] == \
        ["no subtopic: the teacher listed 1 of 2"] * 4
    assert grid["missing"][0]["cell"] == ["Physics", "Energy", "adults", "fun", "how-to"]
    # rows: metadata holds the cell; template ids on every row
    row = res.rows[0]
    assert meta(row) == {"template_id": "textbook/write",
                         "template_hash": load_template("textbook/write").hash,
                         "topic": "Physics", "subtopic": "Motion", "audience": "kids",
                         "style": "fun", "format": "story"}
    assert row["response"] == "story on Motion for kids"
    assert {x["template_id"] for x in res.rows} == {"textbook/write"}
    written = {tuple(meta(x)[k] for k in ("topic", "subtopic", "audience", "style",
                                          "format")) for x in res.rows}
    assert written == {tuple(c) for c in grid["cells"]} - \
        {tuple(m["cell"]) for m in grid["missing"]}
    # rejects: the two topics' subtopic rows and the empty document
    assert [(x["dropped_by"], x["drop_reason"].split(":")[0]) for x in res.rejects] == [
        ("textbook_subtopics", "no subtopics"), ("textbook_subtopics", "no subtopics"),
        ("textbook_write", "empty")]
    assert res.info["subtopics"]["asked"] == 4
    assert [x["topic"] for x in res.info["subtopics"]["without"]] == \
        ["Broken [[fault:400]]", "Void"]
    # a rerun pays only for what failed (failed requests are not cached)
    server.reset()
    again = r.run(params, teach(), base_dir=tmp_path)
    assert server.n_requests == 1
    assert again.info["grid"] == grid


def test_textbook_sampling_is_deterministic_and_even(server, teach, tmp_path):
    topics = ["A", "B", "C"]
    dims = (2, ["kids", "adults"], ["fun"], ["story", "how-to"])
    cells = plan_cells(topics, *dims, max_items=5, seed=0)
    assert cells == plan_cells(topics, *dims, max_items=5, seed=0)
    assert cells != plan_cells(topics, *dims, max_items=5, seed=1)
    assert len(cells) == len(set(cells)) == 5
    assert sorted(sum(c[0] == t for c in cells) for t in topics) == [1, 2, 2]
    assert len(plan_cells(topics, *dims, max_items=24, seed=0)) == 24  # the whole grid
    r, P = recipe("textbook")
    params = P(topics=topics, subtopics=2, audiences=["kids", "adults"], styles=["fun"],
               formats=["story", "how-to"], max_items=5)
    assert [(c.name, c.requests) for c in r.plan(params, base_dir=tmp_path)] == \
        [("subtopics", 3), ("write", 5)]
    two = P(topics=topics, subtopics=2, audiences=["kids"], styles=["fun"],
            formats=["story"], max_items=2, seed=3)
    assert [c.requests for c in r.plan(two, base_dir=tmp_path)] == [2, 2]  # a topic unasked
    server.responder = lambda text, body: "1. One\n2. Two" if "as a numbered list" in text \
        else "doc"
    res = r.run(params, teach(), base_dir=tmp_path)
    names = {"One": 0, "Two": 1}
    assert [(t, names[s], a, st, f) for t, s, a, st, f in res.info["grid"]["cells"]] == \
        cells
    assert res.info["grid"]["written"] == 5 and res.info["grid"]["coverage"] == 1.0
    assert server.n_requests == 3 + 5


def test_textbook_bad_params(tmp_path):
    r, P = recipe("textbook")
    for bad, match in [(dict(formats=["poem"]), "formats"),
                       (dict(audiences=["kids", "Kids"]), "audiences: 'Kids' repeats"),
                       (dict(styles=[]), "styles"), (dict(max_items=0), "max_items"),
                       (dict(subtopics=0), "subtopics"), (dict(topics=[]), "empty"),
                       (dict(seed="1"), "seed")]:
        with pytest.raises(ValidationError, match=match):
            P(**{"topics": ["x"], **bad})
    with pytest.raises(ValidationError, match="topics"):
        P()
    (tmp_path / "dup.txt").write_text("Physics\n# note\nphysics\n")
    with pytest.raises(InputError, match=r"dup.txt:3: topic 'physics' repeats line 1"):
        r.plan(P(topics="dup.txt"), base_dir=tmp_path)
    (tmp_path / "none.txt").write_text("# only comments\n\n")
    with pytest.raises(InputError, match="no topics"):
        r.plan(P(topics="none.txt"), base_dir=tmp_path)
    with pytest.raises(InputError, match="no such file"):
        r.plan(P(topics="missing.txt"), base_dir=tmp_path)
    (tmp_path / "w.j2").write_text("---\nid: t/w\ndescription: d\nversion: 1\n"
                                   "variables: [topic, subtopic]\n---\n{{ topic }} {{ subtopic }}\n")
    with pytest.raises(ConfigError, match="write_template: cells .* render the same prompt"):
        r.plan(P(topics=["x"], write_template="w.j2"), base_dir=tmp_path)


def test_subtopic_lists_as_small_models_write_them():
    from synth.recipes.textbook import parse_subtopics

    # SmolLM2-135M's answer to the shipped template, as it came
    text = ("Here are the 3 subtopics of the water cycle listed as a numbered list:\n\n"
            "1. *Evaporation*\n2. *Condensation*\n3. *Precipitation*\n\n"
            "These 3 topics are listed as a numbered list to help readers navigate the")
    assert parse_subtopics(text, 3) == ["Evaporation", "Condensation", "Precipitation"]
    assert parse_subtopics("1. **Healthy Eating**\n2. _Fibre_\n3. Fibre", 3) == \
        ["Healthy Eating", "Fibre"]
