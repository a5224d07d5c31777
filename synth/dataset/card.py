"""The dataset card: a README.md with a Hugging Face metadata header that says where the
rows came from, under which terms, and what a student trained on them must carry.

Nothing here names a licence of its own accord: every licence, rule and obligation comes
from the registry decision the run was checked against.
"""

from __future__ import annotations

from typing import Any

import yaml

from synth.licences import Decision

__all__ = ["render_card", "teacher_summaries"]


def teacher_summaries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One card line per teacher (provider, model, endpoint) found among trace rows."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        key = (r["provider"], r["model"], r.get("base_url"))
        t = out.get(key)
        if t is None:
            t = out[key] = {"teacher": f"{r['provider']}:{r['model']}", "model_versions": [],
                            "base_url": r.get("base_url"), "ok": 0, "error": 0,
                            "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        if r["status"] != "ok":
            t["error"] += 1
            continue
        t["ok"] += 1
        t["input_tokens"] += r.get("input_tokens") or 0
        t["output_tokens"] += r.get("output_tokens") or 0
        if r.get("cost_usd") is None:
            t["cost_usd"] = None  # one unpriced answer makes the total unknown
        elif t["cost_usd"] is not None:
            t["cost_usd"] += r["cost_usd"]
        v = r.get("model_version")
        if v and v not in t["model_versions"]:
            t["model_versions"].append(v)
    return list(out.values())


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def render_card(*, name: str, licence: Decision, teachers: list[dict[str, Any]],
                rows: int) -> str:
    from synth import __version__

    spdx = sorted(set(licence.spdx))
    header = {
        "license": spdx[0] if len(spdx) == 1 else "other",
        "pretty_name": name,
        "tags": ["synthetic", "distillation", "synth"],
        "size_categories": [_size_category(rows)],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": "train", "path": "traces.parquet"}]}],
    }
    if header["license"] == "other":
        header["license_name"] = "mixed" if len(spdx) > 1 else "unknown"
    out = ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "",
           f"# {name}", "",
           f"Teacher traces generated with synth {__version__}: {rows} rows. Every row carries "
           "its provider, model, model version, parameters, request hash, cost and the "
           "licence decision below (`licence_*`, `intent`, `accepted_terms` columns).", "",
           "## Teachers", "",
           "| teacher | model version(s) | endpoint | rows ok | rows error | tokens in | "
           "tokens out | cost (USD) |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    for t in teachers:
        cost = "n/a" if t["cost_usd"] is None else f"{t['cost_usd']:.4f}"
        out.append(f"| `{t['teacher']}` | {', '.join(t['model_versions']) or '-'} | "
                   f"{t['base_url'] or 'in-process'} | {t['ok']} | {t['error']} | "
                   f"{t['input_tokens']:,} | {t['output_tokens']:,} | {cost} |")
    intent = licence.intent
    out += ["", "## Licence", "",
            f"Declared intent: **{intent}**. Decision: **{licence.decision}** "
            f"(most restrictive rule: `{licence.rule}`; weakest evidence: "
            f"{licence.evidence}).", "",
            "| registry entry | terms | source |", "|---|---|---|"]
    for entry, terms, source in zip(licence.entries, licence.terms, licence.sources):
        out.append(f"| `{entry}` | {terms} | {source} |")
    if not licence.entries:
        out.append("| unknown | no registry entry matched | - |")
    if licence.reasons:
        out += ["", "Why:", ""] + [f"- {r}" for r in licence.reasons]
    out += ["", "## Obligations a student trained on this data must carry", ""]
    out += [f"- {o}" for o in licence.obligations] or ["- none recorded by the registry"]
    if licence.user_conditions:
        out += ["", "## Conditions on you that synth cannot check", ""]
        out += [f"- {c}" for c in licence.user_conditions]
    if licence.accepted:
        out += ["", "## Terms accepted by the user", "",
                "The run was allowed only because the user passed `--accept-terms` for: "
                + ", ".join(f"`{a}`" for a in licence.accepted) + "."]
    out += ["", "Licence facts come from synth's registry (`synth licence list`); "
            "re-check secondary sources before you publish a student.", ""]
    return "\n".join(out)
