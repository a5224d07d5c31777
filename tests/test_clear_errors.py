"""Issue 8, "every mistake is one clear line": `synth: error: WHERE: WHAT (how to fix)`, a
non-zero exit, no traceback, nothing half-written. Real processes, sockets and signals."""

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time

import polars as pl
import pytest

import synth
from synth.errors import ConfigError
from synth.generate.config import GenerateConfig
from tests.conftest import ROOT

LICENCE = ["--intent", "research", "--accept-terms", "unknown"]


def run(*args, env=None, timeout=120, **kw):
    e = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    e.pop("OPENAI_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "synth", *map(str, args)], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout, **kw)


def one_line(p) -> str:
    lines = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr, p.stderr
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("synth: error: ")
    return lines[0]


def prompts(tmp_path, n=3, text="q {i}"):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "prompt": text.format(i=i)}) + "\n"
                           for i in range(n)))
    return src


# ----------------------------------------------------------------------- --out is a file

def test_generate_out_naming_a_file_fails_before_the_model_loads(tmp_path):
    out = tmp_path / "taken.txt"
    out.write_text("keep me")
    cache = tmp_path / "cache"
    p = run("generate", prompts(tmp_path), "-t", "local:smollm2-135m-instruct", "-o", out,
            env={"SYNTH_CACHE_DIR": str(cache)})
    assert p.returncode == 2
    line = one_line(p)
    assert f"--out {out}: is an existing file" in line and "choose a directory" in line
    assert out.read_text() == "keep me"
    assert not cache.exists()  # the local model was never resolved, converted or loaded


def test_generate_out_below_a_file(tmp_path, server):
    (tmp_path / "f").write_text("x")
    p = run("generate", prompts(tmp_path), "-t", "openai:gpt-test", "-o", tmp_path / "f" / "run",
            "--base-url", f"{server.url}/v1", *LICENCE)
    assert p.returncode == 2 and "is a file, so the directory cannot be made" in one_line(p)
    assert server.n_requests == 0


def test_curate_out_naming_a_file_is_checked_first(tmp_path):
    out = tmp_path / "taken.parquet"
    out.write_bytes(b"not yours")
    # the recipe does not exist either: the --out check comes before anything is loaded
    p = run("curate", tmp_path / "nothing.jsonl", "--recipe", "no-such-recipe", "-o", out)
    assert p.returncode == 2 and f"--out {out}: is an existing file" in one_line(p)
    assert out.read_bytes() == b"not yours"


# ----------------------------------------------------------------------- Python overrides

def test_invalid_overrides_from_python_are_checked_as_the_cli_checks(tmp_path, server):
    cfg = GenerateConfig(teacher="openai:gpt-test", out=tmp_path / "o",
                         input=prompts(tmp_path), base_url=f"{server.url}/v1",
                         intent="research", accept_terms=("unknown",))
    for bad, needle in [({"max_tokens": -1}, "--max-tokens: Input should be greater than or "
                                             "equal to 1, got -1"),
                        ({"temperature": 9}, "--temperature: "),
                        ({"dtype": "fp8"}, "--dtype: Input should be 'fp32' or 'bf16'"),
                        ({"base_url": "ftp://x"}, "--base-url: 'ftp://x' must start with"),
                        ({"max_tokenz": 5}, "max_tokenz: not an option of generate (did you "
                                            "mean max_tokens?)")]:
        with pytest.raises(ConfigError) as exc:
            synth.generate(cfg, **bad)
        assert needle in str(exc.value)
    assert server.n_requests == 0 and not (tmp_path / "o").exists()
    # the same mistake on the command line reads the same
    p = run("generate", prompts(tmp_path), "-t", "openai:gpt-test", "-o", tmp_path / "c",
            "--base-url", f"{server.url}/v1", "--max-tokens", "-1", *LICENCE)
    assert p.returncode == 2
    assert one_line(p).endswith("--max-tokens: Input should be greater than or equal to 1, "
                                "got -1")
    # a valid override is applied, the rest of the config kept
    res = synth.generate(cfg, max_tokens=7)
    assert res.summary["params"]["max_tokens"] == 7 and res.summary["rows"] == 3


def test_generate_options_have_one_source():
    """The CLI's generate options are GenerateConfig's fields: same names, defaults, help."""
    from synth.cli import _generate_signature
    from synth.generate.config import GenerateConfig

    sig = _generate_signature()
    python_only = {"prompts", "retry_initial_delay", "base_urls"}
    assert set(sig.parameters) == set(GenerateConfig.model_fields) - python_only
    for name, param in sig.parameters.items():
        info = GenerateConfig.model_fields[name]
        assert param.default.help == info.description, name
        if name not in ("input", "teacher", "out", "accept_terms"):
            assert param.default.default == info.default, name


# ----------------------------------------------------------------------- Ctrl-C in curate

def test_ctrl_c_during_curate_exits_130_and_keeps_the_judges_cache(tmp_path, server):
    n = 60
    pl.DataFrame({"id": [f"r{i}" for i in range(n)],
                  "response": [f"answer {i} [[delay:0.05]] [[reply:{{\"score\": 4}}]]"
                               for i in range(n)]}).write_parquet(tmp_path / "t.parquet")
    rec = tmp_path / "judge.yaml"
    rec.write_text("steps:\n  - llm_judge: " + json.dumps({
        "teacher": "openai:gpt-test", "intent": "research", "accept_terms": ["unknown"],
        "base_url": f"{server.url}/v1", "concurrency": 2}) + "\n")
    out = tmp_path / "cur"
    e = {**os.environ}
    e.pop("OPENAI_API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "synth", "curate", str(tmp_path / "t.parquet"),
                             "--recipe", str(rec), "--out", str(out)], cwd=ROOT, env=e,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while server.n_requests < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command to resume" in err
    assert not (out / "curated.parquet").exists() and not (out / "curation.json").exists()
    cache = next(out.glob("judge/*/cache.sqlite"))
    with sqlite3.connect(cache) as db:
        kept = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert 4 <= kept < n
    # the rerun asks only what the cache lacks, and finishes
    before = server.n_requests
    p = subprocess.run(proc.args, cwd=ROOT, env=e, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert server.n_requests - before == n - kept
    assert (out / "curated.parquet").exists()


# ----------------------------------------------------------------------- cache write error

def test_a_cache_that_cannot_be_written_is_one_line(tmp_path, server):
    """A real write failure: the process may not grow any file beyond 96 KB (RLIMIT_FSIZE;
    Python ignores SIGXFSZ, so the write fails with EFBIG), which SQLite's WAL passes after
    some answers. The run stops with the cache named, exit 8, no traces written."""
    src = prompts(tmp_path, n=400, text="question {i} " + "x" * 300)
    out = tmp_path / "o"

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (96_000, 96_000))

    p = run("generate", src, "-t", "openai:gpt-test", "-o", out, "--base-url",
            f"{server.url}/v1", "--concurrency", "4", *LICENCE, preexec_fn=small_files)
    assert p.returncode == 8, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert "Traceback" not in p.stderr
    assert line.startswith(f"synth: error: {out / 'cache.sqlite'}: cannot save ")
    assert "rerun the same command to resume" in line
    assert not (out / "traces.parquet").exists()


def test_an_unwritable_output_is_one_line(tmp_path):
    from synth.errors import OutputError
    from synth.io import write_atomic

    target = tmp_path / "missing-dir" / "x.parquet"
    with pytest.raises(OutputError, match=r"missing-dir/x\.parquet: cannot write: "):
        write_atomic(target, b"data")
    assert not target.parent.exists()


# ----------------------------------------------------------------------- quick start

# (typer itself brings pydantic to coerce parameters, so pydantic is not on this list)
HEAVY = {"pyarrow", "aiohttp", "polars", "numpy", "torch", "transformers", "matplotlib",
         "scipy", "numba"}


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["licence", "check", "openai:gpt-4o-mini", "--intent", "research"],
    ["licence", "check", "anthropic:claude-sonnet-4-5", "--intent", "internal", "--json"],
])
def test_quick_commands_import_nothing_heavy(argv):
    """`synth --help` and `synth licence check` start in well under 0.3 s on 2 cores
    (bench/README.md); what keeps them there is not importing the heavy libraries."""
    code = (f"import sys; sys.argv = ['synth'] + {argv!r}\n"
            "from synth.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY', sorted({{m.split('.')[0] for m in sys.modules}} & {HEAVY!r}))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert p.stdout.strip().splitlines()[-1] == "HEAVY []", p.stdout + p.stderr


def test_a_failed_curate_write_leaves_the_previous_outputs_whole(tmp_path):
    """The second run cannot write files over 200 KB (RLIMIT_FSIZE): it fails with one
    line, and the first run's outputs are untouched, with no staging folder left."""
    def rows(n, words):
        return pl.DataFrame({"id": [f"r{i}" for i in range(n)],
                             "response": [f"row {i} " + " ".join(f"w{i}x{j}" for j in
                                                                 range(words))
                                          for i in range(n)]})
    rows(20, 5).write_parquet(tmp_path / "small.parquet")
    rows(20_000, 60).write_parquet(tmp_path / "big.parquet")
    out = tmp_path / "cur"
    first = run("curate", tmp_path / "small.parquet", "--recipe", "default", "-o", out)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    p = run("curate", tmp_path / "big.parquet", "--recipe", "default", "-o", out,
            preexec_fn=small_files)
    assert p.returncode == 8, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert "Traceback" not in p.stderr and line.startswith("synth: error: ")
    assert "cannot write" in line
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before
    assert not list(out.glob(".staging-*"))


def test_curate_refuses_to_write_over_its_input_run(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pl.DataFrame({"id": ["a"], "response": ["one two three"]}).write_parquet(
        run_dir / "traces.parquet")
    (run_dir / "README.md").write_text("the generation card")
    for src in (run_dir, run_dir / "traces.parquet"):
        p = run("curate", src, "-o", run_dir)
        assert p.returncode == 2 and "is where input" in one_line(p)
        assert "would replace the run's own" in one_line(p)
    assert (run_dir / "README.md").read_text() == "the generation card"
    assert sorted(x.name for x in run_dir.iterdir()) == ["README.md", "traces.parquet"]
