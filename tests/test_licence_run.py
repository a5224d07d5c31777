"""The licence check as a run meets it: before any request, recorded on every row, carded."""

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

import synth
from synth.errors import InputError, LicenceDeniedError, TermsNotAcceptedError
from synth.licences import check, check_rows, load_registry
from tests.conftest import ROOT

EXTRA = """\
entries:
  - id: denied-model
    kind: model
    models: ["denied-*"]
    terms: Test Denial Licence
    version: "2026-01-01"
    source: https://example.test/deny
    rule: deny
    spdx: other
    commercial: false
    evidence: P
    conditions:
      - {kind: exception, text: "allowed to improve derivatives of this model"}
  - id: nc-model
    kind: model
    models: ["nc-*"]
    terms: Test NC Licence
    version: "1"
    source: https://example.test/nc
    rule: non-commercial
    spdx: cc-by-nc-4.0
    commercial: false
    evidence: P
  - id: cond-model
    kind: model
    models: ["cond-*"]
    terms: Test Conditional Licence
    version: "3.1"
    source: https://example.test/cond
    rule: allow-with-conditions
    spdx: apache-2.0
    commercial: true
    evidence: P
    conditions:
      - {kind: name-prefix, value: "Cond", text: "A distributed student's name must begin with Cond", when: [distributed, competing]}
      - {kind: use-restrictions, text: "The acceptable use policy binds the student"}
"""


@pytest.fixture
def licence_file(tmp_path):
    p = tmp_path / "licences.yaml"
    p.write_text(EXTRA)
    return p


def gen(server, tmp_path, model, **kw):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "prompt": "hello"}\n{"id": "b", "prompt": "world"}\n')
    return synth.generate(input=src, teacher=f"openai:{model}", out=tmp_path / "run",
                          base_url=f"{server.url}/v1", progress=False, **kw)


def test_deny_stops_before_any_request(server, tmp_path, licence_file):
    with pytest.raises(LicenceDeniedError) as exc:
        gen(server, tmp_path, "denied-7b", intent="research", licence_file=licence_file)
    msg = str(exc.value)
    assert "may not teach for intent 'research'" in msg and "https://example.test/deny" in msg
    assert "--accept-terms denied-model" in msg and "improve derivatives" in msg
    assert server.n_requests == 0 and not (tmp_path / "run").exists()


def test_non_commercial_depends_on_intent(server, tmp_path, licence_file):
    with pytest.raises(LicenceDeniedError, match="intent 'internal' is commercial"):
        gen(server, tmp_path, "nc-1b", intent="internal", licence_file=licence_file)
    assert server.n_requests == 0
    res = gen(server, tmp_path, "nc-1b", intent="research", licence_file=licence_file)
    assert res.summary["status"]["ok"] == 2


def test_unknown_terms_need_acceptance(server, tmp_path):
    with pytest.raises(TermsNotAcceptedError, match="--accept-terms unknown"):
        gen(server, tmp_path, "mystery-model", intent="internal")
    assert server.n_requests == 0


def test_api_teachers_need_an_intent(server, tmp_path):
    with pytest.raises(synth.ConfigError, match="--intent: required.*research.*competing"):
        gen(server, tmp_path, "cond-1b")
    assert server.n_requests == 0


def test_accepting_an_unknown_entry_id_is_an_error(server, tmp_path):
    with pytest.raises(synth.ConfigError, match="--accept-terms llama-9: no such"):
        gen(server, tmp_path, "cond-1b", intent="research", accept_terms=("llama-9",))


def test_rows_carry_provenance_and_overrides(server, tmp_path, licence_file):
    res = gen(server, tmp_path, "denied-7b", intent="research", licence_file=licence_file,
              accept_terms=("denied-model",))
    rows = res.table().to_pylist()
    assert len(rows) == 2 and server.n_requests == 2
    for r in rows:
        assert r["intent"] == "research"
        assert r["licence_entries"] == ["denied-model"]
        assert r["terms_versions"] == ["Test Denial Licence (2026-01-01)"]
        assert r["licence_rule"] == "deny" and r["licence_decision"] == "warn"
        assert r["terms_accepted"] is True and r["accepted_terms"] == ["denied-model"]
        assert r["provider"] == "openai" and r["model_version"] and r["cost_usd"] is None
    licence = json.loads((tmp_path / "run" / "run.json").read_text())["licence"]
    assert licence["decision"] == "warn" and licence["accepted"] == ["denied-model"]


def test_dataset_card_lists_terms_and_obligations(server, tmp_path, licence_file):
    gen(server, tmp_path, "cond-1b", intent="distributed", licence_file=licence_file)
    card = (tmp_path / "run" / "README.md").read_text()
    header = card.split("---")[1]
    assert "license: apache-2.0" in header and "traces.parquet" in header
    assert "`cond-model` | Test Conditional Licence (3.1) | https://example.test/cond" in card
    assert "A distributed student's name must begin with Cond" in card
    assert "The acceptable use policy binds the student" in card
    assert "Declared intent: **distributed**" in card
    # internal use: the naming duty does not apply
    gen(server, tmp_path, "cond-1b", intent="internal", licence_file=licence_file)
    card = (tmp_path / "run" / "README.md").read_text()
    assert "must begin with Cond" not in card and "acceptable use policy" in card


def test_mixed_teacher_rows_inherit_the_strictest(server, tmp_path, licence_file):
    reg = load_registry(licence_file)
    rows = [{"provider": "openai", "model": "cond-1b", "base_url": "http://127.0.0.1:1/v1"},
            {"provider": "openai", "model": "nc-1b", "base_url": "http://127.0.0.1:1/v1"}]
    d = check_rows(rows, intent="research", registry=reg)
    assert d.rule == "non-commercial" and d.entries == ["cond-model", "nc-model"]
    assert "The acceptable use policy binds the student" in d.obligations
    with pytest.raises(LicenceDeniedError, match="rows from openai:nc-1b"):
        check_rows(rows, intent="distributed", registry=reg)
    d = check_rows(rows, intent="distributed", registry=reg, accept=("nc-model",))
    assert d.decision == "warn" and d.accepted == ["nc-model"]
    assert "A distributed student's name must begin with Cond" in d.obligations


@pytest.mark.parametrize("old, new, where", [
    ("rule: non-commercial", "rule: sometimes", ":20: field 'rule'"),
    ("    evidence: P\n  - id: cond-model", "    evidnce: P\n  - id: cond-model",
     ":23: field 'evidnce': unknown field"),
    ("id: cond-model", "id: nc-model", ":24: field 'id': duplicate id 'nc-model'"),
    ("entries:", "entries: [", ":2: not valid YAML"),
])
def test_bad_licence_file_names_file_line_field(tmp_path, old, new, where):
    p = tmp_path / "bad.yaml"
    text = EXTRA.replace(old, new, 1)
    assert text != EXTRA
    p.write_text(text)
    with pytest.raises(InputError) as exc:
        load_registry(p)
    assert str(exc.value).startswith(f"{p}{where}"), str(exc.value)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "synth", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_check_json_and_deny_exit_code(licence_file):
    p = cli("licence", "check", "openai:denied-7b", "--intent", "research",
            "--base-url", "http://127.0.0.1:1/v1", "--licence-file", licence_file, "--json")
    assert p.returncode == 6, p.stderr
    d = json.loads(p.stdout)
    assert {"decision", "reasons", "obligations", "entry", "source", "evidence"} <= set(d)
    assert d["decision"] == "deny" and d["entry"] == "denied-model"
    assert d["source"] == "https://example.test/deny" and d["evidence"] == "P"
    p = cli("licence", "check", "openai:cond-1b", "--intent", "distributed",
            "--base-url", "http://127.0.0.1:1/v1", "--licence-file", licence_file)
    assert p.returncode == 0 and "ALLOW" in p.stdout and "must begin with Cond" in p.stdout


def test_cli_generate_deny_is_one_line_exit_6(tmp_path, server, licence_file):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "prompt": "hi"}\n')
    p = cli("generate", src, "-t", "openai:denied-7b", "-o", tmp_path / "o", "--base-url",
            f"{server.url}/v1", "--intent", "internal", "--licence-file", licence_file)
    assert p.returncode == 6
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert server.n_requests == 0 and not (tmp_path / "o").exists()


def test_cli_list_shows_the_registry():
    p = cli("licence", "list", "--json")
    assert p.returncode == 0, p.stderr
    entries = json.loads(p.stdout)
    assert {"openai-api", "anthropic-api"} <= {e["id"] for e in entries}


def test_every_shipped_entry_names_its_provider_and_check_date():
    reg = load_registry()
    assert all(e.provider and e.checked == reg.checked for e in reg.entries)


def test_merge_inherits_the_strictest_rule_and_all_obligations(server, tmp_path, licence_file):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "prompt": "hello"}\n')
    runs = []
    for model in ("cond-1b", "nc-1b"):
        out = tmp_path / model
        synth.generate(input=src, teacher=f"openai:{model}", out=out, progress=False,
                       base_url=f"{server.url}/v1", intent="research",
                       licence_file=licence_file)
        runs.append(out)
    merged = tmp_path / "merged"
    p = cli("merge", *runs, "--out", merged, "--intent", "distributed", "--licence-file",
            licence_file)
    assert p.returncode == 6, p.stderr  # nc-model forbids commercial use
    assert "rows from openai:nc-1b" in p.stderr and not merged.exists()
    p = cli("merge", *runs, "--out", merged, "--intent", "distributed", "--licence-file",
            licence_file, "--accept-terms", "nc-model")
    assert p.returncode == 0, p.stderr
    rows = pq.read_table(merged / "traces.parquet").to_pylist()
    assert sorted(r["id"] for r in rows) == ["run0/a:0", "run1/a:0"]
    card = (merged / "README.md").read_text()
    assert "license: other" in card and "license_name: mixed" in card
    assert "`openai:cond-1b`" in card and "`openai:nc-1b`" in card
    assert "most restrictive rule: `non-commercial`" in card
    assert "must begin with Cond" in card and "`nc-model`" in card


@pytest.mark.parametrize("provider, model, entry, decision", [
    ("openai", "gpt-4o-mini", "openai-api", "deny"),
    ("anthropic", "claude-sonnet-4-5", "anthropic-api", "deny"),
    ("openai", "gemini-2.5-pro", "gemini-api", "deny"),
    ("openai", "deepseek-reasoner", "deepseek-api", "warn"),
])
def test_a_proxy_does_not_launder_terms(provider, model, entry, decision):
    d = check(load_registry(), provider=provider, model=model,
              base_url="http://localhost:4000/v1", intent="competing")
    assert d.entries == [entry] and d.decision == decision
    assert any("own model" in r and "localhost" in r for r in d.reasons)


def test_open_weights_on_a_proxy_use_the_model_licence():
    d = check(load_registry(), provider="openai", model="Qwen/Qwen3-8B",
              base_url="http://localhost:8000/v1", intent="distributed")
    assert d.entries == ["qwen3"] and d.decision in ("allow", "warn")


def test_deny_message_quotes_the_denying_entry(server, tmp_path, licence_file):
    extra = tmp_path / "host.yaml"
    extra.write_text(EXTRA + """\
  - id: loopback-host
    kind: host
    provider: Test Host
    hosts: [127.0.0.1]
    third_party_models: true
    models: ["*"]
    terms: Test Hosting Terms
    version: "1"
    source: https://example.test/host
    rule: deny-competing
    spdx: other
    commercial: true
    evidence: P
""")
    with pytest.raises(LicenceDeniedError) as exc:
        gen(server, tmp_path, "denied-7b", intent="research", licence_file=extra)
    assert "Test Denial Licence forbid training other models" in str(exc.value)
    assert exc.value.decision.entries == ["loopback-host", "denied-model"]
    assert server.n_requests == 0
