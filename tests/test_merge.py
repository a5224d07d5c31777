"""`synth merge` as a user meets it: real runs against the loopback server, real curation,
the CLI in a subprocess. Curation columns survive, unknown terms are refused as `generate`
refuses them, and every bad input is one line, a non-zero exit and nothing written."""

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import synth
from synth.curate import curate
from synth.records import TRACE_SCHEMA
from tests.conftest import ROOT
from tests.test_licence_run import EXTRA

PROMPTS = [{"id": f"p{i}", "prompt": f"tell me about topic number {i} in detail"}
           for i in range(5)] + [{"id": "short", "prompt": "hi"}]


@pytest.fixture
def licence_file(tmp_path):
    p = tmp_path / "licences.yaml"
    p.write_text(EXTRA)
    return p


def gen(server, tmp_path, name, model, *, intent="research", **kw):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    synth.generate(input=src, teacher=f"openai:{model}", out=tmp_path / name,
                   base_url=f"{server.url}/v1", intent=intent, progress=False, **kw)
    return tmp_path / name


def cli(*args):
    return subprocess.run([sys.executable, "-m", "synth", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def one_line_error(p, code):
    assert p.returncode == code, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith("synth: error: ")
    return lines[0]


def test_merge_keeps_curation_columns_and_cards_them(server, tmp_path, licence_file):
    a = gen(server, tmp_path, "a", "cond-1b", licence_file=licence_file)
    b = gen(server, tmp_path, "b", "cond-2b", licence_file=licence_file)
    curate(a, filters="default", out=tmp_path / "a-cur")
    curate(b, filters="default", out=tmp_path / "b-cur")
    plain = gen(server, tmp_path, "c", "nc-1b", licence_file=licence_file)
    merged = tmp_path / "merged"
    p = cli("merge", tmp_path / "a-cur", tmp_path / "b-cur" / "curated.parquet", plain,
            "--out", merged, "--intent", "research", "--licence-file", licence_file)
    assert p.returncode == 0, p.stderr
    t = pq.read_table(merged / "traces.parquet")
    assert t.column_names[:len(TRACE_SCHEMA)] == TRACE_SCHEMA.names
    assert t.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    for col in ("repetition_ratio", "response_words", "cluster_id", "cluster_size"):
        assert col in t.column_names, col
    rows = t.to_pylist()
    assert len(rows) == 5 + 5 + 6  # the curated inputs lost "short"; the plain run did not
    by_model = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    assert all(r["repetition_ratio"] == 0.0 and r["cluster_id"] is not None
               for m in ("cond-1b", "cond-2b") for r in by_model[m])
    assert all(r["repetition_ratio"] is None and r["cluster_id"] is None
               for r in by_model["nc-1b"])
    # clusters of different curations never share an id
    ids_a = {r["cluster_id"] for r in by_model["cond-1b"]}
    ids_b = {r["cluster_id"] for r in by_model["cond-2b"]}
    assert len(ids_a) == len(ids_b) == 5 and not ids_a & ids_b
    assert all(r["licence_entries"] == ["cond-model"] for r in by_model["cond-2b"])
    card = (merged / "README.md").read_text()
    assert "from 3 inputs: 16 rows" in card
    assert f"| `{tmp_path / 'a-cur' / 'curated.parquet'}` | 5 | **default** " \
           "(`filters/default.yaml`) | 6 → 5 |" in card
    assert f"| `{plain / 'traces.parquet'}` | 6 | not curated | - |" in card
    assert "| `length` | 6 | 5 | 1 | too short=1 |" in card
    assert "| `cluster_id` | Int64 | 10 | 10 distinct clusters |" in card
    assert "| `repetition_ratio` | Float64 | 10 | min 0 / mean 0 / max 0 |" in card
    assert "most restrictive rule: `non-commercial`" in card


def test_merged_score_columns_promote_numbers_and_refuse_a_type_clash(server, tmp_path,
                                                                     licence_file):
    run = gen(server, tmp_path, "a", "cond-1b", licence_file=licence_file)
    t = pq.read_table(run / "traces.parquet")
    n = t.num_rows
    pq.write_table(t.append_column("quality", pa.array(range(n), pa.int64())),
                   tmp_path / "ints.parquet")
    pq.write_table(t.append_column("quality", pa.array([0.5] * n)), tmp_path / "floats.parquet")
    pq.write_table(t.append_column("quality", pa.array(["good"] * n)),
                   tmp_path / "words.parquet")
    out = tmp_path / "m"
    p = cli("merge", tmp_path / "ints.parquet", tmp_path / "floats.parquet", "--out", out,
            "--intent", "research", "--licence-file", licence_file)
    assert p.returncode == 0, p.stderr
    q = pq.read_table(out / "traces.parquet")["quality"]
    assert q.type == pa.float64() and sorted(q.to_pylist()) == sorted(
        [float(i) for i in range(n)] + [0.5] * n)
    out2 = tmp_path / "m2"
    p = cli("merge", tmp_path / "ints.parquet", tmp_path / "words.parquet", "--out", out2,
            "--intent", "research", "--licence-file", licence_file)
    line = one_line_error(p, 3)
    assert f"{tmp_path / 'ints.parquet'}, {tmp_path / 'words.parquet'}: field 'quality'" \
        in line and "int64" in line and "string" in line and "rename or cast" in line
    assert not out2.exists()


def _bad_inputs(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"id": "a", "response": "x"}\n')
    (tmp_path / "notes.parquet").write_text("just some text\n")
    (tmp_path / "cut.parquet").write_bytes(b"PAR1" + b"\0" * 20)
    (tmp_path / "empty-dir").mkdir()
    both = tmp_path / "both"
    both.mkdir()
    pq.write_table(pa.table({"id": ["a"]}), both / "traces.parquet")
    pq.write_table(pa.table({"id": ["a"]}), both / "curated.parquet")
    pq.write_table(pa.table({"id": ["a"], "response": ["x"]}), tmp_path / "plain.parquet")


@pytest.mark.parametrize("name, needle", [
    ("rows.jsonl", "rows.jsonl: not a parquet file; expected a run directory of `synth "
                   "generate` (traces.parquet), an output directory of `synth curate` "
                   "(curated.parquet) or a .parquet file"),
    ("notes.parquet", "notes.parquet: not a parquet file; expected a run directory"),
    ("cut.parquet", "cut.parquet: not a readable parquet file"),
    ("empty-dir", "empty-dir: neither traces.parquet nor curated.parquet in this directory"),
    ("both", "both: holds both traces.parquet and curated.parquet: pass the one you mean"),
    ("nope", "nope: no such file or directory; expected a run directory"),
    ("plain.parquet", "plain.parquet: not synth trace rows (missing prompt_id"),
])
def test_inputs_that_are_not_runs_are_one_line_errors(server, tmp_path, licence_file,
                                                      name, needle):
    run = gen(server, tmp_path, "a", "cond-1b", licence_file=licence_file)
    _bad_inputs(tmp_path)
    out = tmp_path / "merged"
    p = cli("merge", run, tmp_path / name, "--out", out, "--intent", "research",
            "--licence-file", licence_file)
    assert needle in one_line_error(p, 3)
    assert not out.exists()


@pytest.mark.parametrize("args, needle", [
    (["--out", "{tmp}/taken"], "--out {tmp}/taken: is an existing file, not a directory"),
    (["--out", "{tmp}/a"], "--out {tmp}/a: is where input"),
    (["--out", "{tmp}/m", "--intent", "commercial"], "--intent: must be one of research"),
    (["--out", "{tmp}/m", "--accept-terms", "llama-9"], "--accept-terms llama-9: no such"),
])
def test_bad_options_fail_before_any_input_is_read(server, tmp_path, args, needle):
    run = gen(server, tmp_path, "a", "mystery-model", accept_terms=("unknown",))
    (tmp_path / "taken").write_text("a file\n")
    before = (run / "traces.parquet").read_bytes()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--intent" not in args:
        args += ["--intent", "research"]
    # the second input is bad: the option error must come first
    p = cli("merge", run, tmp_path / "no-such-run", *args)
    assert needle.replace("{tmp}", str(tmp_path)) in one_line_error(p, 2)
    assert (run / "traces.parquet").read_bytes() == before
    assert (tmp_path / "taken").read_text() == "a file\n" and not (tmp_path / "m").exists()


def test_unknown_terms_need_acceptance_for_the_merge_intent(server, tmp_path):
    run = gen(server, tmp_path, "a", "mystery-model", intent="research",
              accept_terms=("unknown",))
    wide = gen(server, tmp_path, "w", "mystery-wide", intent="distributed",
               accept_terms=("unknown",))
    # accepted at generate time for research: counts for a research merge
    p = cli("merge", run, "--out", tmp_path / "r", "--intent", "research")
    assert p.returncode == 0, p.stderr
    card = (tmp_path / "r" / "README.md").read_text()
    assert "terms were accepted (with `--accept-terms`, or recorded on the rows" in card
    assert "openai:mystery-model: terms unknown accepted when its rows were generated" in card
    # ... but not for a broader use: exit 7, as generate would, and nothing written
    p = cli("merge", run, wide, "--out", tmp_path / "d", "--intent", "distributed")
    line = one_line_error(p, 7)
    assert "rows from openai:mystery-model:" in line and "mystery-wide" not in line
    assert "no registry entry for model 'mystery-model'" in line
    assert "pass --accept-terms unknown" in line
    assert "their run accepted unknown terms for intent research, which does not cover " \
           "'distributed'" in line
    assert not (tmp_path / "d").exists()
    # accepted for distributed covers internal; accepting now covers the rest
    p = cli("merge", wide, "--out", tmp_path / "i", "--intent", "internal")
    assert p.returncode == 0, p.stderr
    p = cli("merge", run, wide, "--out", tmp_path / "d", "--intent", "distributed",
            "--accept-terms", "unknown")
    assert p.returncode == 0, p.stderr
    assert "for: `unknown`" in (tmp_path / "d" / "README.md").read_text()


def test_rows_checked_against_a_licence_file_need_it_again(server, tmp_path, licence_file):
    run = gen(server, tmp_path, "a", "cond-1b", licence_file=licence_file)
    p = cli("merge", run, "--out", tmp_path / "m", "--intent", "research")
    line = one_line_error(p, 7)
    assert "no registry entry for model 'cond-1b'" in line
    assert "checked against cond-model: pass the --licence-file that defines them" in line
    assert not (tmp_path / "m").exists()


def test_a_deny_accepted_at_generate_time_counts_only_for_that_use(server, tmp_path,
                                                                  licence_file):
    run = gen(server, tmp_path, "a", "nc-1b", intent="internal", licence_file=licence_file,
              accept_terms=("nc-model",))
    p = cli("merge", run, "--out", tmp_path / "i", "--intent", "internal", "--licence-file",
            licence_file)
    assert p.returncode == 0, p.stderr
    assert "terms nc-model accepted when its rows were generated" in \
        (tmp_path / "i" / "README.md").read_text()
    p = cli("merge", run, "--out", tmp_path / "d", "--intent", "distributed",
            "--licence-file", licence_file)
    line = one_line_error(p, 6)
    assert "rows from openai:nc-1b may not be used for intent 'distributed'" in line
    assert "--accept-terms nc-model" in line and not (tmp_path / "d").exists()


def test_merge_runs_still_takes_its_old_keyword_accept(server, tmp_path):
    from synth.dataset import merge_runs

    run = gen(server, tmp_path, "a", "mystery-model", intent="research",
              accept_terms=("unknown",))
    with pytest.warns(DeprecationWarning, match="use accept_terms="):
        path, d = merge_runs([run], out=tmp_path / "m", intent="distributed",
                             accept=("unknown",))
    assert path.exists() and d.decision != "deny"
    with pytest.raises(TypeError, match="not both"):
        merge_runs([run], out=tmp_path / "n", intent="research", accept=("unknown",),
                   accept_terms=("unknown",))


def test_rows_made_before_the_batch_id_column_existed_merge_with_it_null(server, tmp_path):
    from synth.dataset import merge_runs

    old = gen(server, tmp_path, "old", "mystery-model", accept_terms=("unknown",))
    t = pq.read_table(old / "traces.parquet")
    pq.write_table(t.drop_columns(["batch_id"]), old / "traces.parquet")  # an older run
    new = gen(server, tmp_path, "new", "mystery-model-2", accept_terms=("unknown",))
    path, _ = merge_runs([old, new], out=tmp_path / "m", intent="research",
                         accept_terms=("unknown",))
    merged = pq.read_table(path)
    assert merged.schema.field("batch_id").type == pa.string()
    assert merged.column("batch_id").null_count == merged.num_rows == 2 * len(PROMPTS)
