"""The instruction-growing recipes: ``self_instruct`` (Wang et al. 2022) and ``evol``
(Evol-Instruct, Xu et al. 2023), and their text utilities (ROUGE-L as rouge-score computes
it, the MinHash-LSH pool pre-filter). Recipe runs go through the loopback provider server
(``server.responder`` scripts the teacher); nothing of ``generate`` is mocked."""

from __future__ import annotations

import json
import random
import re

import pytest
from pydantic import ValidationError

from synth.errors import ConfigError, InputError
from synth.recipes.base import TeacherRoute, Teaching, get_recipe
from synth.recipes.evol import (
    SCAFFOLDING,
    Evol,
    EvolParams,
    copied_scaffolding,
    no_information_gain,
    parse_equal,
    struggled,
)
from synth.recipes.self_instruct import (
    Seed,
    SelfInstruct,
    SelfInstructParams,
    paper_filter,
    parse_tasks,
)
from synth.recipes.text import (
    RougePool,
    lcs_length,
    lsh_params,
    miss_probability,
    only_stop_words,
    rouge_l_f,
    rouge_tokens,
)
from synth.templates import load_template

# ----------------------------------------------------------------------------- helpers


def teaching(server, tmp_path, name="stage", **opts):
    options = {"base_url": server.url + "/v1", "intent": "research",
               "accept_terms": ["unknown"], "max_tokens": 400, "concurrency": 1, **opts}
    return Teaching([TeacherRoute("openai:gpt-test")], options, tmp_path / name)


def user_texts(server):
    """The last user message of every request the server saw, in order."""
    out = []
    for r in server.requests:
        msgs = [m for m in r["body"]["messages"] if m["role"] == "user"]
        out.append(msgs[-1]["content"])
    return out


def write_jsonl(path, objs):
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n"
                            for o in objs))
    return path


def meta(row):
    return json.loads(row["metadata"])


# ----------------------------------------------------------------------------- ROUGE-L

# (a, b, ROUGE-L F): each value is what rouge_score's RougeScorer(["rougeL"]) gives
# (checked against it in the next test when the package is installed)
ROUGE_CASES = [
    ("Write a poem about the sea.", "write a poem about the sea", 1.0),
    ("The cat sat on the mat.", "The cat sat on a mat.", 10 / 12),
    ("a b c d", "d c b a", 2 / 8),
    # 10 tokens each, LCS 7: exactly 0.7, which the paper's filter (> 0.7) keeps
    ("one two three four five six seven x y z", "one two three four five six seven p q r", 0.7),
    # 10 and 11 tokens, LCS 10: 20/21
    ("List five facts about the moon for a young child",
     "List five fun facts about the moon for a young child", 20 / 21),
    ("Explain gravity to a child.", "Describe the history of the Roman Empire.", 0.0),
    ("Café au lait, s'il vous plaît", "caf au lait s il vous pla t", 1.0),  # non-ASCII drop
    ("!!! ???", "anything at all", 0.0),  # no tokens: 0, as rouge-score
    ("Summarize the following article in three sentences.",
     "Summarize the article below in three short sentences.", 2 * 6 / (7 + 8)),
]


@pytest.mark.parametrize("a,b,f", ROUGE_CASES)
def test_rouge_l_hand_made_cases(a, b, f):
    assert rouge_l_f(a, b) == pytest.approx(f, abs=1e-12)
    assert rouge_l_f(b, a) == rouge_l_f(a, b)


def test_rouge_l_is_rouge_score_to_the_bit():
    rs = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rs.RougeScorer(["rougeL"], use_stemmer=False)
    for a, b, f in ROUGE_CASES:
        assert scorer.score(a, b)["rougeL"].fmeasure == rouge_l_f(a, b)
        assert scorer._tokenizer.tokenize(a) == rouge_tokens(a)
    rng = random.Random(7)
    vocab = ["the", "a", "cat", "Dog", "sat", "on", "mat,", "ran", "x-ray", "9", "é"]
    for _ in range(2000):
        a = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 18)))
        b = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 18)))
        assert rouge_l_f(a, b) == scorer.score(a, b)["rougeL"].fmeasure, (a, b)


def test_lcs_bit_parallel_matches_the_table():
    def table(a, b):
        t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                t[i][j] = t[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else \
                    max(t[i - 1][j], t[i][j - 1])
        return t[-1][-1]

    rng = random.Random(3)
    for _ in range(800):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]  # > 64 bits too
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == table(a, b)


def test_lsh_bands_for_the_rouge_bound():
    # F > 0.7  =>  multiset Dice > 0.7  =>  multiset Jaccard > 0.7 / 1.3
    assert lsh_params(0.7) == (158, 4)
    j = 0.7 / 1.3
    assert miss_probability(j, 158, 4) == pytest.approx(9.43e-7, rel=1e-3)
    assert miss_probability(0.6, 158, 4) < 1e-9
    assert lsh_params(0.3) is None  # no banding within 1024 hashes: every pair is scored
    assert RougePool(0.3).lsh is None
    # the bound itself: on random token lists, F > t never happens below J* = t / (2 - t)
    rng = random.Random(5)
    for _ in range(3000):
        a = [rng.choice("abcdef") for _ in range(rng.randint(1, 12))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(1, 12))]
        inter = sum(min(a.count(c), b.count(c)) for c in set(a))
        jac = inter / (len(a) + len(b) - inter)
        f = rouge_l_f(a, b)
        assert 2 * jac / (1 + jac) >= f - 1e-12


def test_pool_keeps_a_task_exactly_at_the_threshold_and_drops_one_above():
    pool = RougePool(0.7)
    pool.add("s0", "one two three four five six seven x y z")
    pool.add("s1", "Describe the history of jazz music in New Orleans.")
    assert pool.offer("p0", "one two three four five six seven p q r") is None  # F = 0.7
    hit = pool.offer("p1", "one two three four five six seven x y q")
    assert (hit.id, hit.index, hit.score) == ("s0", 0, pytest.approx(0.9))  # best of s0, p0
    assert pool.ids == ["s0", "s1", "p0"]
    assert pool.offer("p2", "!!!") is None  # no tokens: F = 0 against everything
    assert pool.pairs == 2 + 3 + 3 and pool.scored <= pool.candidates <= pool.pairs


def _tasks(n, seed=0):
    """Realistic-looking instructions, a third of them rewrites of earlier ones."""
    rng = random.Random(seed)
    verbs = ["Write", "Explain", "Describe", "List", "Summarize", "Compare", "Suggest"]
    what = ["a short poem", "three facts", "the main causes", "a friendly email",
            "five tips", "the history", "a step-by-step guide", "two examples"]
    topics = ["volcanoes", "the Roman Empire", "jazz music", "photosynthesis", "chess",
              "the stock market", "honeybees", "black holes", "recycling", "sleep",
              "the printing press", "coral reefs", "inflation", "the moon landing"]
    extras = ["for a child", "in under 50 words", "using a formal tone", "with examples",
              "as a numbered list", "in one paragraph", "and end with a question", ""]
    out = []
    for _ in range(n):
        if out and rng.random() < 0.33:
            w = rng.choice(out).split()
            i = rng.randrange(len(w))
            w[i] = rng.choice(["really", "clearly", "simply", "briefly"])
            if rng.random() < 0.5:
                w += rng.choice(extras).split()
            out.append(" ".join(w))
        else:
            out.append(f"{rng.choice(verbs)} {rng.choice(what)} about {rng.choice(topics)} "
                       f"{rng.choice(extras)} {rng.choice(extras)}".strip())
    return out


def test_prefilter_equals_brute_force_on_a_pool_of_hundreds():
    texts = _tasks(400)
    seeds, props = texts[:40], texts[40:]

    def run(prefilter):
        pool = RougePool(0.7, seed=0, prefilter=prefilter)
        for i, t in enumerate(seeds):
            pool.add(f"s{i}", t)
        return [(j, None if h is None else (h.id, h.score))
                for j, t in enumerate(props) for h in [pool.offer(f"p{j}", t)]], pool

    fast, pf = run(True)
    slow, pb = run(False)
    assert fast == slow
    # the paper's way, rouge-score against every pool task, keeps the same tasks
    try:
        from rouge_score import rouge_scorer
    except ImportError:  # the reference is optional; the brute-force pool above is not
        rouge_scorer = None
    if rouge_scorer is not None:
        sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        pool, ids, ref = list(seeds), [f"s{i}" for i in range(len(seeds))], []
        for j, t in enumerate(props):
            scores = [sc.score(t, q)["rougeL"].fmeasure for q in pool]
            if max(scores) > 0.7:
                k = scores.index(max(scores))
                ref.append((j, (ids[k], scores[k])))
            else:
                pool.append(t)
                ids.append(f"p{j}")
                ref.append((j, None))
        assert fast == ref
    kept = sum(1 for _, h in fast if h is None)
    assert (kept, len(fast) - kept) == (KEPT_OF_360, 360 - KEPT_OF_360)
    # a pool full of near-duplicates (a third are rewrites): still < 30% of pairs looked at
    assert pf.pairs == pb.pairs == 39723 and pf.candidates < 0.3 * pf.pairs
    assert pb.candidates == pb.pairs  # brute force: every pair is a candidate


KEPT_OF_360 = 126  # what rouge-score keeps, brute force


# ----------------------------------------------------------------------------- Self-Instruct


def test_parse_numbered_continuations():
    # the answer continues the prompt's open "Task 9:"
    assert parse_tasks(" Write a haiku about rain.\nTask 10: Name three rivers in Asia.\n",
                       9) == ["Write a haiku about rain.", "Name three rivers in Asia."]
    # labelled, markdown, other numbering styles, chatter before and after
    text = ("Sure! Here are more tasks:\n\n**Task 9:** Explain how tides work.\n"
            "10. Give two antonyms of 'bright'.\n11) Suggest a name for a bakery.\n"
            "Task 12 - Rewrite this sentence in the passive voice:\n  The dog chased the cat.\n"
            "\nLet me know if you want more!")
    assert parse_tasks(text, 9) == [
        "Explain how tides work.", "Give two antonyms of 'bright'.",
        "Suggest a name for a bakery.",
        "Rewrite this sentence in the passive voice: The dog chased the cat."]
    # no label at all: one task; numbers inside a task are not labels
    assert parse_tasks("convert 3.5 liters to cups.", 9) == ["Convert 3.5 liters to cups."]
    assert parse_tasks("", 9) == []


@pytest.mark.parametrize("task,reason", [
    ("Write a haiku.", "length: 3 words"),
    ("Write a short haiku.", None),
    (" ".join(["word"] * 150), None),
    (" ".join(["word"] * 151), "length: 151 words"),
    ("Describe the image below in detail.", "keyword: image"),
    ("Plot the sales numbers by month.", "keyword: plot"),
    ("Explain how to go to the station from here.", "keyword: go to"),
    ("Read these MAPS and tell me the shortest route.", "keyword: maps"),
    ("Use vivid imagery to describe a storm.", None),  # whole words only
    ("Write a program that sorts a list of numbers.",
     "write a program: starts with 'Write a program'"),
    ("write a program to add two numbers together", "write a program: starts with "
     "'Write a program'"),
    ("Write a Python function that sorts a list.", None),
    ('"Translate this sentence into French," said the teacher.',
     "punctuation: starts with '\"'"),
    ("- List three fruits and their colours.", "punctuation: starts with '-'"),
    ("Écris un poème sur la mer, s'il te plaît.", "non-english: starts with 'É'"),
    ("Summarize the plot twist of a famous film.", "keyword: plot"),
    ("Summarize the main idea of the paragraph below.", None),
])
def test_paper_filters(task, reason):
    assert paper_filter(task) == reason


def _seeds(n):
    return [Seed(id=f"seed-{i}", instruction=f"Seed task number {i} about things.",
                 input=None, output=None, line=i + 1) for i in range(n)]


def _gen(n):
    from synth.recipes.self_instruct import _Task
    from synth.records import Prompt
    return [_Task(id=f"g{i}", instruction=f"Generated task {i} about stuff.",
                  prompt=Prompt(id=f"g{i}", messages=[])) for i in range(n)]


@pytest.mark.parametrize("n_seed,n_gen,expect", [
    (20, 0, (8, 0)),    # round 1: seeds only
    (20, 1, (7, 1)),    # one generated task: the rest from the seeds
    (20, 2, (6, 2)),    # the paper's 6 + 2
    (20, 50, (6, 2)),
    (3, 50, (3, 5)),    # too few seeds: generated tasks fill the list
    (3, 0, (3, 0)),
])
def test_in_context_sampling_six_plus_two(n_seed, n_gen, expect):
    r = SelfInstruct()
    p = SelfInstructParams(seeds="x.jsonl")
    tmpl = load_template("self_instruct/propose")
    pr = r._proposal(p, tmpl, _seeds(n_seed), _gen(n_gen), 2, 0)
    ids = pr.metadata["in_context"]
    assert (sum(i.startswith("seed-") for i in ids), sum(i.startswith("g") for i in ids)) \
        == expect
    assert len(set(ids)) == len(ids) and pr.metadata["in_context_generated"] == expect[1]
    text = pr.messages[-1]["content"]
    n = len(ids)
    assert [int(x) for x in re.findall(r"^Task (\d+):", text, re.M)] == list(range(1, n + 2))
    assert text.endswith(f"Task {n + 1}:")
    # seeded: the same draw every time, another one for another proposal or seed
    assert r._proposal(p, tmpl, _seeds(n_seed), _gen(n_gen), 2, 0).id == pr.id
    if n_seed + n_gen > 8:
        assert r._proposal(p, tmpl, _seeds(n_seed), _gen(n_gen), 2, 1).id != pr.id
        q = SelfInstructParams(seeds="x.jsonl", seed=1)
        assert r._proposal(q, tmpl, _seeds(n_seed), _gen(n_gen), 2, 0).id != pr.id


SEEDS = [
    {"instruction": "Give three tips for staying healthy."},
    {"instruction": "Translate the sentence into Spanish.", "input": "I like apples.",
     "output": "Me gustan las manzanas."},
    {"instruction": "Explain why the sky is blue to a ten-year-old."},
    {"instruction": "Write a limerick about a forgetful wizard."},
    {"instruction": "Classify each animal as a mammal or a reptile: snake, whale, lizard."},
    {"instruction": "Suggest a name for a new coffee shop near a university."},
    {"instruction": "Summarize the causes of the First World War in one paragraph."},
    {"instruction": "List five everyday uses of vinegar around the house."},
]

# what the scripted teacher proposes (the first proposal of round 1); reasons are exact
ROUND1 = [
    ("Describe the water cycle in four simple steps.", None),
    ("Describe the water cycle in four easy steps.", "rouge: 0.88 vs {kept0}"),  # same round
    ("Give three tips for staying healthy and happy.", "rouge: 0.86 vs seed-1"),
    ("Draw a picture of a lighthouse at night.", "keyword: picture"),  # the list's order
    ("Name two rivers.", "length: 3 words"),
    ("Write a program that prints the first ten primes.",
     "write a program: starts with 'Write a program'"),
    ("Compose a short thank-you note to a helpful neighbour.", None),
]


VILLAGE = "Describe a rainy afternoon in a small fishing village."
LATER = {1: "Invent a riddle about time and explain its answer.",
         2: "Convert a recipe for four people into one for ten people.",
         3: "Propose a weekly exercise plan for a beginner runner."}


def _si_responder():
    """Proposal 1 (requests go one at a time, in order) gets ROUND1, continuing the
    prompt's open "Task 9:"; proposal k+1 gets VILLAGE and LATER[k]; answers echo."""
    calls = []

    def respond(text, body):
        if "Come up with a series of tasks" not in text:
            return f"Answer to: {text}"
        calls.append(1)
        first = int(re.findall(r"^Task (\d+):", text, re.M)[-1])
        if len(calls) == 1:
            return "\n".join([ROUND1[0][0]] + [f"Task {first + i}: {t}"
                                               for i, (t, _) in enumerate(ROUND1[1:], 1)])
        return f"Task {first}: {VILLAGE}\nTask {first + 1}: {LATER[len(calls) - 1]}\n"
    return respond


def test_self_instruct_run_filters_pool_and_rejects(server, tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", SEEDS)
    server.responder = _si_responder()
    p = SelfInstructParams(seeds=str(seeds), target=5, rounds=4, per_round=2)
    res = SelfInstruct().run(p, teaching(server, tmp_path), base_dir=tmp_path)

    texts = [r["messages"][-1]["content"] for r in res.rows]
    # round 1: proposal 1 keeps 2 of its 7 tasks, proposal 2 both of its own; round 2:
    # proposal 1 keeps its second, which reaches the target (5)
    assert texts == [ROUND1[0][0], ROUND1[6][0], VILLAGE, LATER[1], LATER[2]]
    assert [r["response"] for r in res.rows] == [f"Answer to: {t}" for t in texts]
    assert all(r["template_id"] == "self_instruct/answer" for r in res.rows)
    m = [meta(r) for r in res.rows]
    assert [x["round"] for x in m] == [1, 1, 1, 1, 2]
    assert [x["proposal_task"] for x in m] == [0, 6, 0, 1, 1]
    assert {x["origin"] for x in m} == {"generated"}
    assert [x["proposal_prompt_id"].split("-")[:3] for x in m] == \
        [["si", "r1", "p0"]] * 2 + [["si", "r1", "p1"]] * 2 + [["si", "r2", "p0"]]
    kept0, village = res.rows[0]["prompt_id"], res.rows[2]["prompt_id"]

    got = [(r["messages"][-1]["content"], r["drop_reason"]) for r in res.rejects]
    assert got == [(t, why.format(kept0=kept0)) for t, why in ROUND1 if why] + [
        (VILLAGE, f"rouge: 1.00 vs {village}"),  # kept in the round before
        (VILLAGE, "target: 5 generated tasks already kept"),
        (LATER[3], "target: 5 generated tasks already kept")]
    assert all(r["dropped_by"] == "self_instruct" for r in res.rejects)
    assert meta(res.rejects[0])["similar_to"] == kept0
    info = res.info
    assert (info["generated"], info["stopped"], info["proposals"], info["proposed"]) == \
        (5, "target", 4, 13)
    assert info["dropped"] == {"keyword": 1, "length": 1, "rouge": 3, "target": 2,
                               "write a program": 1}
    assert [(r["round"], r["proposals"], r["proposed"], r["kept"], r["pool"])
            for r in info["rounds"]] == [(1, 2, 9, 4, 12), (2, 2, 4, 1, 13)]
    pc = info["pool_check"]
    assert pc["pairs"] == 8 + 9 + 9 + 9 + 10 + 11 + 12 + 12
    assert pc["candidates"] < pc["pairs"]
    # round 2's proposals list 6 seeds + 2 generated tasks, round 1's 8 seeds
    props = [t for t in user_texts(server) if "Come up with a series of tasks" in t]
    listed = [re.findall(r"^Task \d+: (.*)$", t, re.M) for t in props]
    assert [(len(x), sum(t in texts for t in x)) for x in listed] == \
        [(8, 0), (8, 0), (8, 2), (8, 2)]
    assert server.n_requests == 4 + 5  # 4 proposals, 5 answers


def test_self_instruct_rerun_sends_nothing_and_plan_counts(server, tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", SEEDS)
    server.responder = _si_responder()
    p = SelfInstructParams(seeds=str(seeds), target=5, rounds=4, per_round=2)
    first = SelfInstruct().run(p, teaching(server, tmp_path), base_dir=tmp_path)
    sent = server.n_requests
    server.responder = lambda text, body: "Task 9: something else entirely, never seen"
    again = SelfInstruct().run(p, teaching(server, tmp_path), base_dir=tmp_path)
    assert server.n_requests == sent  # every request came from the cache
    assert [r["id"] for r in again.rows] == [r["id"] for r in first.rows]
    assert [r["drop_reason"] for r in again.rejects] == \
        [r["drop_reason"] for r in first.rejects]

    plan = SelfInstruct().plan(p, base_dir=tmp_path, samples=3)
    assert [(c.name, c.requests, len(c.prompts)) for c in plan] == \
        [("propose-r1", 2, 2), ("propose-r2", 2, 2), ("propose-r3", 2, 2),
         ("propose-r4", 2, 2), ("answer", 15, 5)]
    # round 1's planned prompts are exactly the ones the run sent
    sent_r1 = {json.dumps(r["body"]["messages"]) for r in server.requests[:2]}
    assert {json.dumps(pr.messages) for pr in plan[0].prompts} == sent_r1
    q = SelfInstructParams(seeds=str(seeds), answer=False, rounds=2, per_round=3)
    assert [(c.name, c.requests) for c in SelfInstruct().plan(q, base_dir=tmp_path)] == \
        [("propose-r1", 3), ("propose-r2", 3)]


def test_self_instruct_without_answers_and_with_seed_answers(server, tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", SEEDS)
    server.responder = _si_responder()
    p = SelfInstructParams(seeds=str(seeds), target=2, rounds=1, per_round=1, answer=False)
    res = SelfInstruct().run(p, teaching(server, tmp_path), base_dir=tmp_path)
    assert server.n_requests == 1
    assert [(r["messages"], r["response"], r["status"]) for r in res.rows] == [
        ([{"role": "user", "content": ROUND1[0][0]}], None, "ok"),
        ([{"role": "user", "content": ROUND1[6][0]}], None, "ok")]
    assert res.rows[0]["template_id"] == "self_instruct/propose"
    assert res.rows[0]["model"] == "gpt-test"
    server.reset()
    server.responder = _si_responder()
    p = SelfInstructParams(seeds=str(seeds), target=2, rounds=1, per_round=1,
                           answer_seeds=True)
    res = SelfInstruct().run(p, teaching(server, tmp_path, "b"), base_dir=tmp_path)
    m = [meta(r) for r in res.rows]
    assert [x["origin"] for x in m] == ["seed"] * 8 + ["generated"] * 2
    assert res.rows[1]["messages"][-1]["content"] == \
        "Translate the sentence into Spanish.\n\nI like apples."
    assert (m[1]["round"], m[1]["seed_id"]) == (0, "seed-2")


def test_self_instruct_own_templates_and_empty_answers(server, tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", SEEDS)
    (tmp_path / "mine.j2").write_text(
        "---\nid: my/propose\ndescription: mine\nversion: 1\nvariables: [tasks, count]\n"
        "---\nMore, please. Come up with a series of tasks:\n"
        "{% for t in tasks %}\nTask {{ loop.index }}: {{ t }}\n{% endfor %}\n"
        "Task {{ tasks|length + 1 }}:\n")
    inner = _si_responder()
    server.responder = lambda text, body: \
        "" if text == ROUND1[6][0] else inner(text, body)
    p = SelfInstructParams(seeds=str(seeds), target=2, rounds=1, per_round=1,
                           propose_template="mine.j2")
    res = SelfInstruct().run(p, teaching(server, tmp_path), base_dir=tmp_path)
    assert user_texts(server)[0].startswith("More, please.")
    assert [r["messages"][-1]["content"] for r in res.rows] == [ROUND1[0][0]]
    assert (res.rejects[-1]["messages"][-1]["content"], res.rejects[-1]["drop_reason"]) == \
        (ROUND1[6][0], "empty: the answer is empty")
    assert (res.info["answered"], res.info["dropped"]["empty"]) == (1, 1)
    (tmp_path / "bad.j2").write_text("---\nid: bad\ndescription: d\nversion: 1\n"
                                     "variables: []\n---\nNo tasks here.\n")
    with pytest.raises(ConfigError, match="propose_template: .*bad.j2 does not use"):
        SelfInstruct().plan(SelfInstructParams(seeds=str(seeds), propose_template="bad.j2"),
                            base_dir=tmp_path)
    with pytest.raises(ConfigError, match="templates.deepen: .*bad.j2 does not use"):
        Evol().plan(EvolParams(instructions=["x"], templates={"deepen": "bad.j2"}),
                    base_dir=tmp_path)


@pytest.mark.parametrize("lines,where", [
    (['{"instruction": "ok one"}', '{"instruction": "ok two"'], ":2: not valid JSON"),
    (['{"instruction": "ok"}', '{"instruction": ""}'], ":2: field 'instruction': required"),
    (['{"instruction": 5}'], ":1: field 'instruction'"),
    (['{"instruction": "ok", "inptu": "x"}'], ":1: field 'inptu': unknown field"),
    (['{"instruction": "ok", "input": ["x"]}'], ":1: field 'input': must be a string"),
    (['{"id": 1, "instruction": "a"}', '{"id": 1, "instruction": "b"}'],
     ":2: field 'id': duplicate id"),
    (['[1, 2]'], ":1: expected a JSON object"),
    ([], ": file is empty"),
])
def test_seed_file_errors_name_file_line_field(tmp_path, lines, where):
    f = tmp_path / "seeds.jsonl"
    f.write_text("".join(x + "\n" for x in lines))
    p = SelfInstructParams(seeds="seeds.jsonl")
    with pytest.raises(InputError) as e:
        SelfInstruct().plan(p, base_dir=tmp_path)
    assert str(e.value).startswith(f"{f}{where}")
    with pytest.raises(InputError, match="no such file"):
        SelfInstruct().plan(SelfInstructParams(seeds="nope.jsonl"), base_dir=tmp_path)


@pytest.mark.parametrize("kw,field", [
    ({"from_seed": 9}, "from_seed"),
    ({"rouge_threshold": 0.0}, "rouge_threshold"),
    ({"per_round": "8"}, "per_round"),
    ({"target": 0}, "target"),
    ({"answer_seeds": True, "answer": False}, "answer_seeds"),
    ({"rouge": 0.7}, "rouge"),
])
def test_self_instruct_bad_params(kw, field):
    with pytest.raises(ValidationError) as e:
        SelfInstructParams(seeds="s.jsonl", **kw)
    assert field in str(e.value)


# ----------------------------------------------------------------------------- Evol rules


def _words(n, sorry=True):
    w = (["Sorry,"] if sorry else ["Well,"]) + ["word"] * (n - 1)
    return " ".join(w)


def test_evol_rule2_sorry_under_80_words():
    assert struggled(_words(79)) == 79
    assert struggled(_words(80)) is None  # "less than 80 words"
    assert struggled(_words(81)) is None
    assert struggled(_words(20, sorry=False)) is None
    assert struggled("I am SORRY, I cannot do that.") == 7
    assert struggled("The sorrowful poet wrote a sad verse.") is None
    assert struggled(_words(99), words=100) == 99


def test_evol_rule3_only_punctuation_and_stop_words():
    assert only_stop_words("The, and... of it!?")
    assert only_stop_words("  ...  ")
    assert only_stop_words("")
    assert only_stop_words("I don't, do you?")
    assert not only_stop_words("It is 42.")
    assert not only_stop_words("The answer is yes.")


def test_evol_rule4_copied_scaffolding():
    terms = tuple(load_template("evol/constraints").meta["scaffolding"]) + SCAFFOLDING
    assert copied_scaffolding("#Rewritten Prompt#: Explain tides in detail.", terms) == \
        "#rewritten prompt#"
    assert copied_scaffolding("Following the given prompt, write a haiku.", terms) == \
        "given prompt"
    assert copied_scaffolding("Answer the given instruction in French.", terms) == \
        "given instruction"
    assert copied_scaffolding("Explain tides, with two examples.", terms) is None
    # a term the parent already had was not copied from the evolving prompt
    assert copied_scaffolding("Continue the story from the given prompt, in 100 words.",
                              terms, "Continue the story from the given prompt.") is None
    breadth = load_template("evol/breadth").meta["scaffolding"]
    assert "#created prompt#" in breadth and "created prompt" in breadth


def test_evol_rule1_no_information_gain():
    assert no_information_gain("Write a poem.", "write a poem!", 0.9) == \
        "identical after normalisation"
    # 10 tokens each, LCS 9: F = 0.9 exactly, at the threshold: eliminated
    a = "one two three four five six seven eight nine ten"
    assert no_information_gain(a, a.replace("ten", "eleven"), 0.9) == "ROUGE-L 0.90 >= 0.9"
    assert no_information_gain(a, a.replace("nine ten", "x y"), 0.9) is None  # 0.8
    assert no_information_gain("Explain tides.", "   ", 0.9) == "empty evolution"
    assert (parse_equal("Equal"), parse_equal("Not Equal."), parse_equal("not equal"),
            parse_equal("They are equal."), parse_equal("Maybe")) == \
        (True, False, False, True, None)


# ----------------------------------------------------------------------------- Evol runs

ORIGINALS = {
    "w": "Describe the water cycle.",
    "c": "List three uses of copper.",
    "s": "Explain why the sky is blue.",
    "p": "Name a famous painter.",
    "h": "Give a synonym for happy.",
}
FIRST_EVOLUTION = {  # what the teacher makes of each, the first time it sees it
    "Describe the water cycle.": "describe the water cycle",  # rule 1
    "List three uses of copper.": "List three uses of copper, as the rewritten prompt asks.",
    "Explain why the sky is blue.": "Explain why the sky is blue, covering Rayleigh "
                                    "scattering and the colours of sunsets.",
    "Name a famous painter.": "Name a famous Dutch painter of the 17th century and one "
                              "of their best-known works.",
    "Give a synonym for happy.": "Give two synonyms for happy and use each one in a "
                                 "sentence.",
}
ANSWERS = {  # the answer to each first evolution
    FIRST_EVOLUTION["Explain why the sky is blue."]: _words(79),   # rule 2
    FIRST_EVOLUTION["Name a famous painter."]: _words(81),          # kept
    FIRST_EVOLUTION["Give a synonym for happy."]: "The... and, of it!",  # rule 3
}
GIVEN = re.compile(r"#Given Prompt#:\n(.*?)\n\n#(?:Rewritten|Created) Prompt#:", re.S)


def _evol_responder():
    seen: set[str] = set()

    def respond(text, body):
        m = GIVEN.search(text)
        if m:
            inst = m.group(1)
            if inst in FIRST_EVOLUTION and inst not in seen:
                seen.add(inst)
                return FIRST_EVOLUTION[inst]
            return inst + " Include one concrete example and a short justification."
        if text.startswith("Here are two instructions"):
            return "Equal" if "water cycle" in text or "copper" in text else "Not Equal"
        return ANSWERS.get(text, f"A complete and helpful answer to: {text}")
    return respond


def _evol_input(tmp_path):
    return write_jsonl(tmp_path / "inst.jsonl", [
        {"id": "w", "instruction": ORIGINALS["w"]},
        {"id": "c", "instruction": ORIGINALS["c"]},
        {"id": "s", "prompt": ORIGINALS["s"], "system": "Be concise."},
        {"id": "p", "messages": [{"role": "user", "content": ORIGINALS["p"]}]},
        {"id": "h", "instruction": ORIGINALS["h"]},
    ])


def test_evol_eliminations_and_failed_items_back_in_the_pool(server, tmp_path):
    server.responder = _evol_responder()
    p = EvolParams(input=str(_evol_input(tmp_path)), rounds=2)
    res = Evol().run(p, teaching(server, tmp_path), base_dir=tmp_path)

    reasons = {meta(r)["root_id"]: r["drop_reason"] for r in res.rejects}
    assert reasons == {
        "w": "rule1: no information gain (identical after normalisation)",
        "c": "rule4: copies the prompt's scaffolding ('rewritten prompt')",
        "s": "rule2: 'sorry' in a 79-word answer (< 80)",
        "h": "rule3: the answer is only punctuation and stop words"}
    assert all(r["dropped_by"] == "evol" for r in res.rejects)
    # rules 1 and 4 are decided on the evolution (no answer paid), 2 and 3 on the answer
    assert {meta(r)["root_id"]: meta(r)["call"] for r in res.rejects} == \
        {"w": "evolve", "c": "evolve", "s": "answer", "h": "answer"}

    rows = [(meta(r)["root_id"], meta(r)["depth"], r["messages"][-1]["content"])
            for r in res.rows]
    suffix = " Include one concrete example and a short justification."
    pe = FIRST_EVOLUTION[ORIGINALS["p"]]
    assert rows == [("p", 1, pe),
                    ("w", 2, ORIGINALS["w"] + suffix), ("c", 2, ORIGINALS["c"] + suffix),
                    ("s", 2, ORIGINALS["s"] + suffix), ("p", 2, pe + suffix),
                    ("h", 2, ORIGINALS["h"] + suffix)]
    # the failed items' round-2 evolutions were made from the originals; p's from round 1's
    evolve_r2 = [GIVEN.search(t).group(1) for t in user_texts(server)
                 if GIVEN.search(t)][5:]
    assert evolve_r2 == [ORIGINALS["w"], ORIGINALS["c"], ORIGINALS["s"], pe, ORIGINALS["h"]]
    m = {(meta(r)["root_id"], meta(r)["depth"]): meta(r) for r in res.rows}
    assert m[("p", 2)]["parent_id"] == res.rows[0]["prompt_id"]
    assert m[("p", 1)]["parent_id"] == "p" and m[("w", 2)]["parent_id"] == "w"
    ops = {"constraints", "deepen", "concretize", "reasoning", "complicate_input", "breadth"}
    assert all(x["operation"] in ops and x["evolve_template"] == f"evol/{x['operation']}"
               for x in m.values())
    # the input's system prompt is kept for the answer
    s2 = next(r for r in res.rows if meta(r)["root_id"] == "s")
    assert s2["messages"][0] == {"role": "system", "content": "Be concise."}
    assert res.rows[0]["response"] == _words(81)

    info = res.info
    assert [(r["round"], r["pool"], r["evolved"], r["eliminated"], r["back_to_pool"])
            for r in info["rounds"]] == [
        (1, 5, 1, {"rule1": 1, "rule2": 1, "rule3": 1, "rule4": 1, "error": 0}, 4),
        (2, 5, 5, {"rule1": 0, "rule2": 0, "rule3": 0, "rule4": 0, "error": 0}, 0)]
    assert info["final_generations"] == {"1": 4, "2": 1}
    assert [(meta(r)["depth"], meta(r)["generation"]) for r in res.rows] == \
        [(1, 1), (2, 1), (2, 1), (2, 1), (2, 2), (2, 1)]
    assert sum(o["tried"] for o in info["operations"].values()) == 10
    assert sum(o["evolved"] for o in info["operations"].values()) == 6
    assert sum(o["eliminated"] for o in info["operations"].values()) == 4
    # requests: 5 evolutions + 3 answers, then 5 evolutions + 5 answers
    assert server.n_requests == 18

    sent = server.n_requests
    again = Evol().run(p, teaching(server, tmp_path), base_dir=tmp_path)
    assert server.n_requests == sent
    assert [r["id"] for r in again.rows] == [r["id"] for r in res.rows]


def test_evol_teacher_equality_and_plan(server, tmp_path):
    server.responder = _evol_responder()
    inst = ["Describe the water cycle in detail.", "Explain how tides work."]
    p = EvolParams(instructions=inst, rounds=1, equality="teacher",
                   operations=["constraints", "deepen"])
    res = Evol().run(p, teaching(server, tmp_path), base_dir=tmp_path)
    assert [r["drop_reason"] for r in res.rejects] == \
        ["rule1: no information gain (teacher: Equal)"]
    assert [r["messages"][-1]["content"] for r in res.rows] == \
        [inst[1] + " Include one concrete example and a short justification."]
    assert server.n_requests == 2 + 2 + 1  # evolve, equal, answer

    plan = Evol().plan(EvolParams(instructions=inst, rounds=2, equality="teacher"),
                       base_dir=tmp_path, samples=2)
    assert [(c.name, c.requests, len(c.prompts)) for c in plan] == [
        ("evolve-r1", 2, 2), ("equal-r1", 2, 2), ("answer-r1", 4, 2),
        ("evolve-r2", 2, 2), ("equal-r2", 2, 2), ("answer-r2", 4, 2)]
    assert [c.name for c in Evol().plan(EvolParams(instructions=inst), base_dir=tmp_path)] \
        == ["evolve-r1", "answer-r1", "evolve-r2", "answer-r2", "evolve-r3", "answer-r3"]
    # round 1's planned evolutions are the requests the run sent
    p1 = Evol().plan(p, base_dir=tmp_path)[0]
    assert [pr.messages for pr in p1.prompts] == \
        [r["body"]["messages"] for r in server.requests[:2]]


@pytest.mark.parametrize("lines,where", [
    (['{"instruction": "ok"}', "{oops"], ":2: not valid JSON"),
    (['{"instruction": ""}'], ":1: field 'instruction': must be a non-empty string"),
    (['{"instruction": "ok", "instrucion": "x"}'], ":1: field 'instrucion': unknown"),
    (['{"prompt": ""}'], ":1: field 'prompt': must be a non-empty string"),
    (['{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", '
      '"content": "b"}, {"role": "user", "content": "c"}]}'],
     ":1: field 'messages': evol evolves one instruction"),
    (['{"id": "x", "instruction": "a"}', '{"id": "x", "prompt": "b"}'],
     ":2: field 'id': duplicate id 'x'"),
    (['{"instruction": "a", "input": 3}'], ":1: field 'input': must be a string"),
])
def test_evol_input_errors_name_file_line_field(tmp_path, lines, where):
    f = tmp_path / "in.jsonl"
    f.write_text("".join(x + "\n" for x in lines))
    with pytest.raises(InputError) as e:
        Evol().plan(EvolParams(input="in.jsonl"), base_dir=tmp_path)
    assert str(e.value).startswith(f"{f}{where}")


@pytest.mark.parametrize("kw,needle", [
    ({}, "exactly one of them"),
    ({"input": "a.jsonl", "instructions": ["x"]}, "exactly one of them"),
    ({"instructions": []}, "give at least one instruction"),
    ({"instructions": ["ok", " "]}, "instruction 1 is empty"),
    ({"instructions": ["x"], "operations": []}, "give at least one operation"),
    ({"instructions": ["x"], "operations": ["deepen", "deepen"]}, "listed twice: deepen"),
    ({"instructions": ["x"], "operations": ["paraphrase"]}, "operations.0"),
    ({"instructions": ["x"], "equality": "llm"}, "equality"),
    ({"instructions": ["x"], "rounds": 0}, "rounds"),
    ({"instructions": ["x"], "templates": {"deepn": "x.j2"}}, "unknown key deepn"),
])
def test_evol_bad_params(kw, needle):
    with pytest.raises(ValidationError) as e:
        EvolParams(**kw)
    assert needle in str(e.value)


def test_recipes_are_registered():
    assert get_recipe("self_instruct") is SelfInstruct
    assert get_recipe("evol") is Evol
    for name in ("self_instruct/propose", "self_instruct/answer", "evol/equal",
                 "evol/answer", "evol/constraints", "evol/deepen", "evol/concretize",
                 "evol/reasoning", "evol/complicate_input", "evol/breadth"):
        t = load_template(name)
        assert t.id == name
