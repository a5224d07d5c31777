"""May this teacher's outputs train the student you have in mind? Checked before the first
request; the answer travels with every row.

The registry (``registry.yaml`` beside this file, extended by ``--licence-file``) holds one
entry per API service (``kind: host``) or model family (``kind: model``). A check matches the
teacher's host and model id (most specific glob first), evaluates each matched entry's rule
against the user's declared intent, and combines them: the worst decision wins, obligations
add up. Nothing matched means ``unknown``: a warning that also needs explicit acceptance.

Rules and intents (``research`` < ``internal`` < ``distributed`` < ``competing``):

================= ===================================================================
allow             allow
allow-with-conds  allow, with obligations (some only when the student is distributed)
deny-competing    deny for ``competing``; warn otherwise: "compete" is never defined
deny              deny
non-commercial    allow for ``research``; deny otherwise
upstream          a router that adds nothing: the model's own licence decides
unknown           warn, and refuse to start until ``--accept-terms unknown``
================= ===================================================================

Any entry backed only by secondary evidence, carrying ``warnings``, or with conditions on
the user (MAU thresholds, EU domicile) turns ``allow`` into ``warn``: a tool cannot check
those, so it says so. ``--accept-terms ID`` turns that entry's ``deny`` into ``warn`` and is
recorded on every row.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

import orjson

from synth.errors import InputError
from synth.yamlfile import field_lines, load_yaml

__all__ = [
    "INTENTS",
    "self_hosted",
    "own_student",
    "RULES",
    "Condition",
    "Entry",
    "Registry",
    "Decision",
    "load_registry",
    "check",
    "check_rows",
    "inherit",
]

INTENTS = ("research", "internal", "distributed", "competing")
RULES = ("allow", "allow-with-conditions", "deny-competing", "deny", "non-commercial",
         "unknown", "upstream")
#: How restrictive a rule is, for "the stricter document wins" and for inheritance.
_STRICTNESS = {"upstream": -1, "allow": 0, "allow-with-conditions": 1, "unknown": 2,
               "deny-competing": 3, "non-commercial": 4, "deny": 5}
_DECISION_ORDER = {"allow": 0, "warn": 1, "deny": 2}
_EVIDENCE_ORDER = {"P": 0, "S": 1, "U": 2}
_ENTRY_FIELDS = {"id", "kind", "provider", "own_models", "hosts", "third_party_models", "models", "terms",
                 "version", "source", "rule", "documents", "spdx", "commercial", "evidence",
                 "conditions", "warnings", "notes", "checked"}
_CONDITION_KINDS = ("name-prefix", "attribution", "notice-file", "use-restrictions",
                    "user-condition", "exception")


@dataclass(frozen=True, slots=True)
class Condition:
    kind: str
    text: str
    value: str | None = None
    when: tuple[str, ...] = INTENTS

    def applies(self, intent: str) -> bool:
        return intent in self.when


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    kind: str  # host | model
    models: tuple[str, ...]
    terms: str
    version: str
    source: str
    rule: str  # effective: the strictest of ``documents`` when there are several
    spdx: str
    commercial: bool
    evidence: str
    hosts: tuple[str, ...] = ()
    third_party_models: bool = False
    conditions: tuple[Condition, ...] = ()
    documents: tuple[dict, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: str | None = None
    provider: str | None = None  # who publishes the model or runs the service
    own_models: tuple[str, ...] = ()  # host entries: the service's own model ids, which
    # carry its terms through any proxy or gateway
    checked: str | None = None  # when the facts were last checked
    origin: str = ""  # file:line it came from
    digest: str = ""  # sha256 of the entry as recorded: which facts a decision used

    def terms_version(self) -> str:
        return f"{self.terms} ({self.version})"

    def model_score(self, model: str) -> int | None:
        """Literal characters of the most specific glob matching ``model``, or None."""
        full = model.lower()
        last = full.rsplit("/", 1)[-1]
        best = None
        for pat in self.models:
            p = pat.lower()
            if fnmatchcase(full, p) or fnmatchcase(last, p):
                score = len(p) - p.count("*") - p.count("?")
                best = score if best is None else max(best, score)
        return best


@dataclass
class Registry:
    entries: list[Entry]
    checked: str | None = None

    def get(self, entry_id: str) -> Entry | None:
        for e in reversed(self.entries):  # later files override earlier ones
            if e.id == entry_id:
                return e
        return None

    def check_accepted(self, accept: Iterable[str]) -> None:
        """Each ``--accept-terms`` value must be an entry id of this registry, or
        ``unknown``: a typo must not look like an acceptance."""
        for entry_id in accept:
            if entry_id != "unknown" and self.get(entry_id) is None:
                from synth.errors import ConfigError

                raise ConfigError(f"--accept-terms {entry_id}: no such registry entry "
                                  "(see `synth licence list`)")

    def host_entry(self, host: str) -> Entry | None:
        host = host.lower()
        found = None
        for e in self.entries:
            if e.kind == "host" and any(host == h or host.endswith("." + h) for h in e.hosts):
                found = e  # later wins: --licence-file overrides
        return found

    def own_model_entry(self, model: str) -> Entry | None:
        """The service whose own model this is (``gpt-*`` → OpenAI), wherever it is served."""
        best, best_score = None, -1
        for e in self.entries:
            if e.kind != "host" or not e.own_models:
                continue
            score = dataclasses.replace(e, models=e.own_models).model_score(model)
            if score is not None and score >= best_score:
                best, best_score = e, score
        return best

    def model_entry(self, model: str) -> Entry | None:
        best, best_score = None, -1
        for e in self.entries:
            if e.kind != "model":
                continue
            score = e.model_score(model)
            if score is not None and score >= best_score:
                best, best_score = e, score
        return best


@dataclass
class Decision:
    """The outcome of a licence check (or of several, combined by :func:`inherit`)."""

    decision: str  # allow | warn | deny
    rule: str
    intent: str
    entries: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    obligations: list[str] = field(default_factory=list)
    user_conditions: list[str] = field(default_factory=list)
    how_to_proceed: list[str] = field(default_factory=list)
    denied_by: list[str] = field(default_factory=list)  # the reasons behind a deny
    needs_acceptance: bool = False
    accepted: list[str] = field(default_factory=list)
    evidence: str = "U"
    terms: list[str] = field(default_factory=list)  # "name (version)" per entry
    sources: list[str] = field(default_factory=list)
    spdx: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    name_prefixes: list[str] = field(default_factory=list)
    attributions: list[str] = field(default_factory=list)

    @property
    def entry(self) -> str:
        return "+".join(self.entries) if self.entries else "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision, "rule": self.rule, "intent": self.intent,
            "entry": self.entry, "entries": self.entries, "reasons": self.reasons,
            "obligations": self.obligations, "user_conditions": self.user_conditions,
            "how_to_proceed": self.how_to_proceed, "denied_by": self.denied_by,
            "needs_acceptance": self.needs_acceptance, "accepted": self.accepted,
            "source": self.sources[0] if self.sources else None, "sources": self.sources,
            "evidence": self.evidence, "terms": self.terms, "spdx": self.spdx,
            "digests": self.digests, "name_prefixes": self.name_prefixes,
            "attributions": self.attributions,
        }


# ---------------------------------------------------------------------------------- loading

def _entry(item: Any, where: str, lines: dict[str, int], checked: str | None) -> Entry:
    line = lines.get("")

    def bad(msg: str, fld: str | None = None) -> InputError:
        at = lines.get((fld or "").split("[", 1)[0], line)
        return InputError(msg, path=where, line=at, field=fld)

    if not isinstance(item, dict):
        raise bad("each entry must be a mapping")
    for key in item:
        if key not in _ENTRY_FIELDS:
            raise bad(f"unknown field (expected one of {', '.join(sorted(_ENTRY_FIELDS))})",
                      str(key))
    for key in ("id", "kind", "models", "terms", "version", "source", "spdx", "commercial",
                "evidence"):
        if key not in item:
            raise bad("missing", key)
    kind = item["kind"]
    if kind not in ("host", "model"):
        raise bad(f"must be host or model, got {kind!r}", "kind")
    models = item["models"]
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise bad("must be a non-empty list of globs", "models")
    hosts = item.get("hosts") or []
    if kind == "host" and (not isinstance(hosts, list) or not hosts):
        raise bad("a host entry needs a list of hostnames", "hosts")
    if item["evidence"] not in _EVIDENCE_ORDER:
        raise bad(f"must be P, S or U, got {item['evidence']!r}", "evidence")
    if not isinstance(item["commercial"], bool):
        raise bad("must be true or false", "commercial")
    documents = item.get("documents") or []
    rule = item.get("rule")
    if documents:
        for i, d in enumerate(documents):
            if not isinstance(d, dict) or d.get("rule") not in RULES or not d.get("name"):
                raise bad(f"needs a name and a rule ({', '.join(RULES)})", f"documents[{i}]")
        strictest = max((d["rule"] for d in documents), key=_STRICTNESS.__getitem__)
        if rule is not None and rule != strictest:
            raise bad(f"{rule!r} contradicts its documents, whose strictest rule is "
                      f"{strictest!r}; omit it", "rule")
        rule = strictest
    if rule not in RULES or rule == "unknown":
        raise bad(f"must be one of {', '.join(r for r in RULES if r != 'unknown')}, "
                  f"got {rule!r}", "rule")
    conditions = []
    for i, c in enumerate(item.get("conditions") or []):
        fld = f"conditions[{i}]"
        if not isinstance(c, dict) or c.get("kind") not in _CONDITION_KINDS or not c.get("text"):
            raise bad(f"needs kind ({', '.join(_CONDITION_KINDS)}) and text", fld)
        when = c.get("when") or list(INTENTS)
        if not isinstance(when, list) or any(w not in INTENTS for w in when):
            raise bad(f"when: intents must be among {', '.join(INTENTS)}", fld)
        conditions.append(Condition(c["kind"], str(c["text"]),
                                    None if c.get("value") is None else str(c["value"]),
                                    tuple(when)))
    digest = hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS,
                                         default=str)).hexdigest()
    return Entry(
        id=str(item["id"]), kind=kind, models=tuple(models), terms=str(item["terms"]),
        version=str(item["version"]), source=str(item["source"]), rule=rule,
        spdx=str(item["spdx"]), commercial=item["commercial"], evidence=item["evidence"],
        hosts=tuple(str(h).lower() for h in hosts),
        third_party_models=bool(item.get("third_party_models", False)),
        conditions=tuple(conditions), documents=tuple(documents),
        warnings=tuple(str(w) for w in item.get("warnings") or ()),
        notes=item.get("notes"),
        provider=None if item.get("provider") is None else str(item["provider"]),
        own_models=tuple(str(m) for m in item.get("own_models") or ()),
        checked=str(item["checked"]) if item.get("checked") is not None else checked,
        origin=f"{where}:{line}" if line else where, digest=digest)


def _parse(path: Path | str) -> Registry:
    data, node = load_yaml(path)
    where = str(path)
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise InputError("expected a mapping with an 'entries' list", path=where,
                         field="entries")
    lines = field_lines(node, "entries")
    checked = None if data.get("checked") is None else str(data["checked"])
    entries, seen = [], {}
    for i, item in enumerate(data["entries"]):
        at = lines[i] if i < len(lines) else {}
        line = at.get("")
        e = _entry(item, where, at, checked)
        if e.id in seen:
            raise InputError(f"duplicate id {e.id!r} (first on line {seen[e.id]})", path=where,
                             line=line, field="id")
        seen[e.id] = line
        entries.append(e)
    return Registry(entries, checked)


@lru_cache(maxsize=1)
def _shipped() -> Registry:
    with resources.as_file(resources.files("synth") / "licences" / "registry.yaml") as p:
        return _parse(p)


def load_registry(extra: str | Path | None = None) -> Registry:
    """The shipped registry, extended (and overridden, entry by entry) by ``extra``."""
    reg = _shipped()
    if extra is not None:
        more = _parse(extra)
        reg = Registry(reg.entries + more.entries, reg.checked)
    return reg


# --------------------------------------------------------------------------------- checking

def self_hosted(host: str | None) -> bool:
    """A host on this machine or a private network (no host: in-process): a service of
    the user's own, whose terms add nothing."""
    if host is None:
        return True
    if host == "localhost" or host.endswith((".local", ".internal", ".localhost")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


def _evaluate(e: Entry, intent: str, accept: Iterable[str]) -> Decision:
    """One entry against one intent."""
    d = Decision(decision="allow", rule=e.rule, intent=intent, entries=[e.id],
                 evidence=e.evidence, terms=[e.terms_version()], sources=[e.source],
                 spdx=[e.spdx], digests=[e.digest])
    rule = e.rule
    if rule == "deny":
        d.decision = "deny"
        d.reasons.append(f"{e.id}: {e.terms} forbid training other models on outputs")
    elif rule == "deny-competing":
        if intent == "competing":
            d.decision = "deny"
            d.reasons.append(f"{e.id}: {e.terms} forbid training models that compete "
                             "with the provider, and you declared intent 'competing'")
        else:
            d.decision = "warn"
            d.reasons.append(f"{e.id}: {e.terms} forbid training competing models and never "
                             f"define 'compete'; you declared '{intent}': that is your call")
    elif rule == "non-commercial":
        if intent == "research":
            d.reasons.append(f"{e.id}: {e.terms} allow research / non-commercial use only")
        else:
            d.decision = "deny"
            d.reasons.append(f"{e.id}: {e.terms} allow research / non-commercial use only, "
                             f"and intent '{intent}' is commercial")
    elif rule == "upstream":
        d.reasons.append(f"{e.id}: routes to the model's provider; its terms decide")
    if len(e.documents) > 1:  # after the rule's own reason, which error messages quote
        ranked = sorted(e.documents, key=lambda doc: -_STRICTNESS[doc["rule"]])
        d.reasons.append(
            f"{e.id}: {len(ranked)} documents disagree; the stricter applies: "
            f"{ranked[0]['name']} ({ranked[0]['rule']}) over "
            + ", ".join(f"{doc['name']} ({doc['rule']})" for doc in ranked[1:]))
    for c in e.conditions:
        if not c.applies(intent):
            continue
        if c.kind == "user-condition":
            d.user_conditions.append(c.text)
            d.reasons.append(f"{e.id}: a condition on you that synth cannot check: {c.text}")
            d.decision = _worst(d.decision, "warn")
        elif c.kind == "exception":
            d.how_to_proceed.append(f"{c.text} — if that is your case, pass "
                                    f"--accept-terms {e.id}")
        else:
            d.obligations.append(c.text)
            if c.kind == "name-prefix" and c.value:
                d.name_prefixes.append(c.value)
            if c.kind == "attribution" and c.value:
                d.attributions.append(c.value)
    for w in e.warnings:
        d.reasons.append(f"{e.id}: {w}")
        d.decision = _worst(d.decision, "warn")
    if e.evidence != "P":
        what = "secondary (a dated copy of the provider's page)" if e.evidence == "S" else \
            "unknown"
        d.reasons.append(f"{e.id}: the source is {what}; re-check {e.source}")
        d.decision = _worst(d.decision, "warn")
    if e.id in accept and d.decision in ("deny", "warn"):
        d.accepted.append(e.id)
        if d.decision == "deny":
            d.decision = "warn"
            d.reasons.append(f"{e.id}: overridden by --accept-terms {e.id}; you take "
                             "responsibility for this use")
    if d.decision == "deny":
        d.denied_by.append(d.reasons[0])
        d.how_to_proceed.append(f"with written permission from {e.provider or 'the licensor'}"
                                f", pass --accept-terms {e.id}")
    return d


def _unknown(intent: str, what: str, accept: Iterable[str]) -> Decision:
    d = Decision(decision="warn", rule="unknown", intent=intent, evidence="U",
                 reasons=[f"no registry entry for {what}: its terms are unknown"])
    if "unknown" in accept:
        d.accepted.append("unknown")
        d.reasons.append("accepted with --accept-terms unknown")
    else:
        d.needs_acceptance = True
        d.how_to_proceed.append("read the terms yourself, then pass --accept-terms unknown "
                                "or add an entry with --licence-file")
    return d


def _worst(a: str, b: str) -> str:
    return a if _DECISION_ORDER[a] >= _DECISION_ORDER[b] else b


def _in_process(provider: str) -> bool:
    """The provider's ``in_process`` trait; False (an API) for one not registered here, such
    as a plugin's in rows made where it was installed."""
    from synth.errors import TeacherSpecError
    from synth.teachers import provider_traits

    try:
        return provider_traits(provider).in_process
    except TeacherSpecError:
        return False


def own_student(model: str) -> dict[str, Any] | None:
    """The provenance a student synth trained carries (``train.json`` in its directory, or
    the ``synth.provenance`` key of a GGUF exported from it); None for any other model."""
    import json
    from pathlib import Path

    p = Path(str(model).removeprefix("local:"))
    try:
        if p.is_dir() and (p / "train.json").is_file():
            prov = json.loads((p / "train.json").read_text()).get("provenance")
        elif p.is_file() and p.suffix == ".gguf":
            from gguf import GGUFReader

            field = GGUFReader(str(p)).get_field("synth.provenance")
            prov = json.loads(field.contents()) if field is not None else None
        else:
            return None
    except Exception:  # noqa: BLE001 - unreadable: not a student we can vouch for
        return None
    if not isinstance(prov, dict) or not isinstance(prov.get("teachers"), list):
        return None
    return prov


def _student(registry: Registry, model: str, prov: dict[str, Any], intent: str,
             accept: tuple[str, ...], depth: int) -> Decision:
    """A synth-trained student's terms: its training rows' teachers' (checked again for
    this intent) and the weights it started from."""
    if depth > 4:  # a student of a student of ...: far enough to stop trusting the chain
        return _unknown(intent, f"model {model!r} (provenance too deep)", accept)
    parts = [check(registry, provider=str(p), model=str(m), base_url=b, intent=intent,
                   accept=accept, depth=depth + 1)
             for p, m, b in (t for t in prov["teachers"] if len(t) == 3)]
    base = prov.get("base_model")
    if base:
        parts.append(check(registry, provider="local", model=str(base).removeprefix("local:"),
                           base_url=None, intent=intent, accept=accept, depth=depth + 1))
    if prov.get("rows_without") or not parts:
        parts.append(_unknown(intent, f"{prov.get('rows_without') or 'all'} training rows "
                              f"of {model!r} without provenance", accept))
    d = inherit(parts, intent)
    d.reasons.insert(0, f"{model!r} is a student synth trained: the terms of its training "
                     "data's teachers and of the weights it started from carry over")
    return d


def check(registry: Registry, *, provider: str, model: str, base_url: str | None,
          intent: str, accept: Iterable[str] = (), depth: int = 0) -> Decision:
    """Decide whether ``provider:model`` at ``base_url`` may teach for ``intent``."""
    if intent not in INTENTS:
        raise ValueError(f"intent must be one of {', '.join(INTENTS)}")
    accept = tuple(accept)
    host = urlsplit(base_url).hostname if base_url else None
    parts: list[Decision] = []
    # A host entry applies wherever it names the host (an internal gateway can have terms
    # too); unnamed loopback / private hosts are self-hosted and add nothing.
    # In-process weights reach no service: only the model's own licence applies.
    served = not _in_process(provider)
    host_entry = registry.host_entry(host) if served and host else None
    proxied = False
    if host_entry is None and served:
        # A proxy or gateway (LiteLLM on localhost, a company relay) does not launder terms:
        # a provider's own model carries its provider's API terms wherever it is reached.
        host_entry = registry.own_model_entry(model)
        proxied = host_entry is not None
    if host_entry is not None:
        parts.append(_evaluate(host_entry, intent, accept))
    if proxied:
        parts.append(Decision(
            decision="allow", rule="upstream", intent=intent, evidence="P",
            reasons=[f"{model!r} is {host_entry.provider or host_entry.id}'s own model: "
                     f"its API terms apply even through {host or 'this endpoint'}"]))
    needs_model = host_entry is None or host_entry.third_party_models or \
        host_entry.rule == "upstream"
    if needs_model:
        model_entry = registry.model_entry(model)
        own = own_student(model) if model_entry is None and not served else None
        if model_entry is not None:
            parts.append(_evaluate(model_entry, intent, accept))
        elif own is not None:
            parts.append(_student(registry, model, own, intent, accept, depth))
        else:
            parts.append(_unknown(intent, f"model {model!r}", accept))
    if host is not None and host_entry is None and not self_hosted(host):
        note = Decision(decision="warn", rule="upstream", intent=intent, evidence="P",
                        reasons=[f"host {host} is not in the registry: if it is a service "
                                 "with terms of its own, add them with --licence-file"])
        parts.append(note)
    return inherit(parts, intent)


def check_rows(rows: Iterable[dict[str, Any]], *, intent: str, registry: Registry,
               accept: Iterable[str] = ()) -> Decision:
    """The decision a dataset built from these trace rows inherits for ``intent``.

    Each distinct teacher (provider, model, base URL) among the rows is checked again for
    the dataset's intent, and the results combined: most restrictive rule, union of
    obligations. Acceptances recorded on rows were given for their run's intent, so only
    ``accept`` counts here. Raises :class:`~synth.errors.LicenceDeniedError` on deny.
    """
    from synth.errors import LicenceDeniedError

    teachers = sorted({(r["provider"], r["model"], r.get("base_url")) for r in rows},
                      key=lambda t: tuple(x or "" for x in t))
    if not teachers:
        raise ValueError("no rows")
    accept = tuple(accept)
    parts = [check(registry, provider=p, model=m, base_url=b, intent=intent, accept=accept)
             for p, m, b in teachers]
    combined = inherit(parts, intent)
    if combined.decision == "deny":
        denied = [(f"{p}:{m}", d) for (p, m, _), d in zip(teachers, parts)
                  if d.decision == "deny"]
        raise LicenceDeniedError(
            f"licence: rows from {', '.join(t for t, _ in denied)} may not be used for "
            f"intent '{intent}': {denied[0][1].denied_by[0]}; drop those rows or pass "
            "--accept-terms with the entry id", combined)
    return combined


def inherit(decisions: list[Decision], intent: str) -> Decision:
    """Combine decisions (host + model, or every teacher of a mixed dataset): the worst
    decision, the most restrictive rule, the union of everything else."""
    if not decisions:
        raise ValueError("nothing to combine")
    out = Decision(decision="allow", rule="upstream", intent=intent, evidence="P")
    for d in decisions:
        out.decision = _worst(out.decision, d.decision)
        if _STRICTNESS[d.rule] > _STRICTNESS[out.rule]:
            out.rule = d.rule
        if _EVIDENCE_ORDER[d.evidence] > _EVIDENCE_ORDER[out.evidence]:
            out.evidence = d.evidence
        out.needs_acceptance = out.needs_acceptance or d.needs_acceptance
        for name in ("entries", "reasons", "obligations", "user_conditions",
                     "how_to_proceed", "denied_by", "accepted", "terms", "sources", "spdx", "digests",
                     "name_prefixes", "attributions"):
            mine = getattr(out, name)
            for x in getattr(d, name):
                if x not in mine:
                    mine.append(x)
    return out
