"""The dataset card: a README.md with a Hugging Face metadata header that says where the
rows came from, under which terms, and what a student trained on them must carry.

Nothing here names a licence of its own accord: every licence, rule and obligation comes
from the registry decision the rows were checked against. Three cards:

* :func:`render_card` for a ``synth generate`` run directory (and, with ``intro`` and
  ``sections``, for a ``synth merge`` output);
* :func:`render_curated_card` for a ``synth curate`` output directory: the licence is
  inherited from the kept rows' provenance columns, the recipe and its counts per step and
  reason come from the curation summary, and the score columns the steps added are listed
  with simple statistics.

:func:`teacher_decisions` is the licence check a dataset built from trace rows inherits:
each teacher among the rows checked again for the dataset's intent, with the acceptances
recorded on its rows counted when they were given for that use or a broader one.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable

import yaml

from synth.licences import INTENTS, Decision, Registry, check, inherit, load_registry

if TYPE_CHECKING:
    import polars as pl

__all__ = ["render_card", "render_curated_card", "teacher_summaries", "teacher_decisions",
           "provenance_groups", "score_columns", "score_section", "acceptance_covers",
           "inherited_licence", "CARD_COLUMNS", "size_category", "details_text"]

#: Columns of trace rows a card's teacher table and licence section read.
CARD_COLUMNS = ("provider", "model", "base_url", "status", "input_tokens", "output_tokens",
                "cost_usd", "model_version", "intent", "licence_entries", "terms_versions",
                "licence_rule", "licence_decision", "terms_accepted", "accepted_terms")
#: Columns that are neither trace columns nor scores: the rejects' bookkeeping.
_BOOKKEEPING = {"drop_reason", "dropped_by"}
#: Integer columns that name a cluster: counted, not averaged.
_CLUSTER_COLUMNS = {"cluster_id", "semantic_cluster"}


def teacher_summaries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One card line per teacher (provider, model, endpoint) found among trace rows. A row
    with ``n`` stands for ``n`` rows whose tokens and cost it holds summed."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        key = (r["provider"], r["model"], r.get("base_url"))
        t = out.get(key)
        if t is None:
            t = out[key] = {"teacher": f"{r['provider']}:{r['model']}", "model_versions": [],
                            "base_url": r.get("base_url"), "ok": 0, "error": 0,
                            "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        n = r.get("n", 1)
        if r["status"] != "ok":
            t["error"] += n
            continue
        t["ok"] += n
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


# ------------------------------------------------------------------------ the licence

def acceptance_covers(recorded_intent: str | None, intent: str) -> bool:
    """Whether terms accepted at generate time for ``recorded_intent`` count for ``intent``.

    They do for the same use or a narrower one (``research`` < ``internal`` <
    ``distributed`` < ``competing``): every registry rule is at least as permissive for a
    narrower use, so what the user cleared for ``distributed`` is cleared for ``internal``.
    Never for a broader use: accepting unknown terms for research says nothing about
    selling a student. Rows without an intent were checked as ``research`` (local teachers),
    so they count as that."""
    recorded = recorded_intent or "research"
    if recorded not in INTENTS or intent not in INTENTS:
        return False
    return INTENTS.index(recorded) >= INTENTS.index(intent)


def _teacher_key(r: dict[str, Any]) -> tuple:
    return (r["provider"], r["model"], r.get("base_url"))


def teacher_decisions(rows: Iterable[dict[str, Any]], *, intent: str, registry: Registry,
                      accept: Iterable[str] = ()) -> list[tuple[tuple, Decision]]:
    """The licence decision of each teacher (provider, model, base URL) among trace rows,
    for a dataset declared for ``intent``: ``accept`` (given now, for every teacher) plus the
    entry ids recorded in that teacher's rows' ``accepted_terms`` where
    :func:`acceptance_covers` their recorded ``intent``. Never raises on deny or on unknown
    terms: the caller decides (merge refuses; a curated card reports).
    ``inherit([d for _, d in result], intent)`` is the dataset's decision."""
    accept = tuple(accept)
    carried: dict[tuple, set[str]] = {}
    for r in rows:
        got = carried.setdefault(_teacher_key(r), set())
        if acceptance_covers(r.get("intent"), intent):
            got.update(a for a in (r.get("accepted_terms") or ()) if a not in accept)
    out = []
    for key in sorted(carried, key=lambda t: tuple(x or "" for x in t)):
        provider, model, base_url = key
        recorded = tuple(sorted(carried[key]))
        d = check(registry, provider=provider, model=model, base_url=base_url,
                  intent=intent, accept=accept + recorded)
        used = [a for a in d.accepted if a in recorded]
        if used:
            d.reasons.append(f"{provider}:{model}: terms {', '.join(used)} accepted when "
                             "its rows were generated (their accepted_terms, for an intent "
                             f"covering '{intent}')")
        out.append((key, d))
    return out


def inherited_licence(groups: list[dict[str, Any]], registry: Registry
                      ) -> tuple[Decision, list[str]]:
    """The licence a dataset (or a student trained on it) inherits from its rows'
    provenance groups (:func:`provenance_groups`, non-empty): each teacher checked again
    for the narrowest intent the rows were generated for, the worst decision winning.
    Returns the decision and the rows' intents, narrowest first. Rows without an intent
    (local teachers) were checked as research at generate time, and count as that."""
    intents = sorted({g["intent"] if g["intent"] in INTENTS else "research" for g in groups},
                     key=INTENTS.index)
    decisions = teacher_decisions(groups, intent=intents[0], registry=registry)
    return inherit([d for _, d in decisions], intents[0]), intents


def _licence_lines(licence: Decision, *, accepted_by: str) -> list[str]:
    out = ["## Licence", "",
           f"Declared intent: **{licence.intent}**. Decision: **{licence.decision}** "
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
                f"{accepted_by} for: " + ", ".join(f"`{a}`" for a in licence.accepted) + "."]
    return out


# ------------------------------------------------------------------------ score columns

def score_columns(df: "pl.DataFrame") -> list[dict[str, Any]]:
    """The columns curation steps added to trace rows (anything not in ``TRACE_SCHEMA``),
    each with simple statistics: ``numeric`` (min / mean / max), ``cluster`` (distinct
    clusters), ``verdict`` (counts of each value, for ``*_verdict`` and ``lang``) or
    ``other`` (text such as ``judge_reason``)."""
    import polars as pl

    from synth.records import TRACE_SCHEMA

    skip = set(TRACE_SCHEMA.names) | _BOOKKEEPING
    out = []
    for col, dtype in df.schema.items():
        if col in skip or col.startswith("_"):
            continue
        s = df[col]
        item: dict[str, Any] = {"column": col, "dtype": str(dtype),
                                "values": s.len() - s.null_count()}
        if dtype.is_numeric() or dtype == pl.Boolean:
            values = s.drop_nulls()
            if col in _CLUSTER_COLUMNS:
                item.update(kind="cluster", clusters=values.n_unique())
            else:
                f = values.cast(pl.Float64)
                item.update(kind="numeric", min=f.min(), mean=f.mean(), max=f.max())
        elif dtype == pl.String and (col.endswith("_verdict") or col == "lang"):
            counts = Counter("null" if v is None else v for v in s.to_list())
            item.update(kind="verdict", counts=dict(counts.most_common()))
        else:
            item["kind"] = "other"
        out.append(item)
    return out


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def score_section(scores: list[dict[str, Any]]) -> list[str]:
    """The card's "Score columns" section for :func:`score_columns`' result."""
    out = ["## Score columns", ""]
    if not scores:
        return out + ["None: the rows carry the trace columns only."]
    out += ["| column | type | rows with a value | summary |", "|---|---|---:|---|"]
    for s in scores:
        if s["kind"] == "numeric":
            what = f"min {_num(s['min'])} / mean {_num(s['mean'])} / max {_num(s['max'])}"
        elif s["kind"] == "cluster":
            what = f"{s['clusters']:,} distinct clusters"
        elif s["kind"] == "verdict":
            shown = list(s["counts"].items())
            what = ", ".join(f"{k}={v:,}" for k, v in shown[:8])
            if len(shown) > 8:
                what += f", ... ({len(shown) - 8} more values)"
        else:
            what = "-"
        out.append(f"| `{s['column']}` | {s['dtype']} | {s['values']:,} | {what} |")
    return out


# ------------------------------------------------------------------------ cards

def size_category(n: int) -> str:
    """The Hugging Face Hub's size bucket for ``n`` rows (``1K<n<10K``)."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def _header(*, name: str, spdx: list[str] | None, rows: int, data_file: str) -> list[str]:
    """``spdx=None``: the licence is unknown (rows without provenance)."""
    spdx = sorted(set(spdx or ()))
    header = {
        "license": spdx[0] if len(spdx) == 1 else "other",
        "pretty_name": name,
        "tags": ["synthetic", "distillation", "synth"],
        "size_categories": [size_category(rows)],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": "train", "path": data_file}]}],
    }
    if header["license"] == "other":
        header["license_name"] = "mixed" if len(spdx) > 1 else "unknown"
    return ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", ""]


def _teacher_lines(teachers: list[dict[str, Any]]) -> list[str]:
    out = ["## Teachers", "",
           "| teacher | model version(s) | endpoint | rows ok | rows error | tokens in | "
           "tokens out | cost (USD) |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    for t in teachers:
        cost = "n/a" if t["cost_usd"] is None else f"{t['cost_usd']:.4f}"
        out.append(f"| `{t['teacher']}` | {', '.join(t['model_versions']) or '-'} | "
                   f"{t['base_url'] or 'in-process'} | {t['ok']} | {t['error']} | "
                   f"{t['input_tokens']:,} | {t['output_tokens']:,} | {cost} |")
    return out


_FOOTER = ["", "Licence facts come from synth's registry (`synth licence list`); "
           "re-check secondary sources before you publish a student.", ""]


def render_card(*, name: str, licence: Decision, teachers: list[dict[str, Any]],
                rows: int, data_file: str = "traces.parquet", intro: str | None = None,
                sections: Iterable[list[str]] = (),
                accepted_by: str = "The run was allowed only because the user passed "
                "`--accept-terms`") -> str:
    """The card of a run directory; ``intro`` replaces the generate run's first paragraph,
    ``sections`` (lists of Markdown lines) go after the licence and ``accepted_by`` says how
    accepted terms were accepted (``synth merge``)."""
    from synth.version import __version__

    if intro is None:
        intro = (f"Teacher traces generated with synth {__version__}: {rows} rows. Every row "
                 "carries its provider, model, model version, parameters, request hash, cost "
                 "and the licence decision below (`licence_*`, `intent`, `accepted_terms` "
                 "columns).")
    out = _header(name=name, spdx=licence.spdx, rows=rows, data_file=data_file)
    out += [f"# {name}", "", intro, ""] + _teacher_lines(teachers) + [""]
    out += _licence_lines(licence, accepted_by=accepted_by)
    for lines in sections:
        out += [""] + lines
    return "\n".join(out + _FOOTER)


#: A recipe detail's list shows this many entries, then how many more there are.
MAX_LIST_SHOWN = 8
#: A recipe detail's text value is cut past this many characters (paths, hashes).
MAX_TEXT_SHOWN = 60


def _detail_value(v: Any, depth: int) -> str:
    if isinstance(v, dict):
        inner = ", ".join(f"{k} {_detail_value(x, depth + 1)}" for k, x in v.items())
        # the first level reads as a list after its key; deeper ones are grouped
        return inner if depth == 0 else f"({inner})"
    if isinstance(v, (list, tuple)):
        if not v:
            return "none"
        shown = [_detail_value(x, depth + 1) for x in v[:MAX_LIST_SHOWN]]
        more = len(v) - len(shown)
        text = ", ".join(shown) + (f", … {more:,} more" if more > 0 else "")
        # inside a dict a list is grouped, unless its entries already are (dicts)
        grouped = depth > 0 and not any(isinstance(x, dict) for x in v)
        return f"({text})" if grouped else text
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    s = str(v)
    return s if len(s) <= MAX_TEXT_SHOWN else s[:MAX_TEXT_SHOWN] + "…"


def details_text(info: dict[str, Any] | None) -> str:
    """A stage's or step's extra figures (``info`` in stage.json or curation.json) as readable text, never a Python
    repr: ``key: value`` per entry, a dict's items as ``name value``, nested dicts and
    lists in parentheses, long lists and texts shortened.

    >>> details_text({"inputs": 4, "eliminated": {"rule1": 2, "rule2": 0},
    ...               "rounds": [{"round": 1, "pool": 4}]})
    'inputs: 4; eliminated: rule1 2, rule2 0; rounds: (round 1, pool 4)'
    """
    return "; ".join(f"{k}: {_detail_value(v, 0)}" for k, v in (info or {}).items())


def step_details(info: dict[str, Any] | None) -> str:
    """A step's extra figures (``info`` in curation.json) as one line, e.g. the judge's
    requests and cost or what MinHash-LSH checked; long values (paths, hashes) left out.
    The card's step table and the HTML report both show it."""
    parts = []
    for section, fields in (info or {}).items():
        if not isinstance(fields, dict):
            parts.append(f"{section}: {_detail_value(fields, 1)}")
            continue
        items = [f"{k} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k} {v}"
                 for k, v in fields.items()
                 if not isinstance(v, (dict, list)) and len(str(v)) <= 40]
        parts.append(f"{section}: {', '.join(items)}")
    return "; ".join(parts)


def curation_lines(summary: dict[str, Any], *, rejected_rows: int,
                   rejects: str = "`rejects.parquet` beside this card") -> list[str]:
    """The filter set and its counts per step and reason, from ``curate()``'s summary."""
    # filter_set: since filter sets got their name; recipe: what older curation.json hold
    recipe = summary.get("filter_set", summary.get("recipe"))
    path = summary.get("filter_set_file", summary.get("recipe_file"))
    where = f" (`{path}`)" if path else ""
    out = ["## Curation", "",
           f"Filter set **{recipe}**{where}: {summary.get('input_rows', 0):,} rows in, "
           f"{summary.get('kept', 0):,} kept, {rejected_rows:,} rejected. The rejected rows "
           f"are in {rejects}, each with `dropped_by` (the step) and `drop_reason`; they are "
           "not part of the dataset.", "",
           "| step | rows in | kept | dropped | reasons | seconds | details |",
           "|---|---:|---:|---:|---|---:|---|"]
    for st in summary.get("steps", []):
        why = ", ".join(f"{k}={v:,}" for k, v in st.get("reasons", {}).items()) or "-"
        out.append(f"| `{st['step']}` | {st['in']:,} | {st['kept']:,} | {st['dropped']:,} | "
                   f"{why.replace('|', '/')} | {st.get('seconds', 0):.3f} | "
                   f"{step_details(st.get('info')).replace('|', '/') or '-'} |")
    return out


def provenance_groups(kept: "pl.DataFrame") -> list[dict[str, Any]]:
    """The provenance of the rows that have a teacher: one dict per distinct combination of
    the provenance columns, with its ``n`` rows and their tokens and cost summed (cost None
    when any is unknown). Missing columns are None (``status`` defaults to ``ok``: these
    rows passed curation)."""
    import polars as pl

    have = [c for c in CARD_COLUMNS if c in kept.columns]
    df = kept.select(have).filter(pl.col("provider").is_not_null()
                                  & pl.col("model").is_not_null())
    summed = [c for c in ("input_tokens", "output_tokens", "cost_usd") if c in have]
    aggs = [pl.len().alias("n")] + [pl.col(c).sum() for c in summed if c != "cost_usd"]
    if "cost_usd" in summed:
        aggs.append(pl.when(pl.col("cost_usd").null_count() > 0).then(None)
                    .otherwise(pl.col("cost_usd").sum()).alias("cost_usd"))
    keys = [c for c in have if c not in summed]
    rows = df.group_by(keys, maintain_order=True).agg(aggs).to_dicts()
    for r in rows:
        for c in CARD_COLUMNS:
            r.setdefault(c, "ok" if c == "status" else None)
    return rows


def _recorded_lines(rows: list[dict[str, Any]], registry: Registry) -> list[str]:
    """The decisions recorded on the rows when they were generated, with row counts."""
    groups: Counter = Counter()
    for r in rows:
        groups[(r["intent"], tuple(r["licence_entries"] or ()), r["licence_rule"],
                r["licence_decision"], tuple(r["accepted_terms"] or ()))] += r.get("n", 1)
    out = ["## Licence decisions recorded on the rows when they were generated", "",
           "| intent | registry entries | rule | decision | accepted terms | rows |",
           "|---|---|---|---|---|---:|"]
    for (intent, entries, rule, decision, accepted), n in sorted(
            groups.items(), key=lambda kv: -kv[1]):
        out.append(f"| {intent or '-'} | {', '.join(entries) or '-'} | {rule or '-'} | "
                   f"{decision or '-'} | {', '.join(accepted) or '-'} | {n:,} |")
    known = {e.id for e in registry.entries}
    foreign = sorted({e for _, entries, *_ in groups for e in entries if e not in known})
    if foreign:
        out += ["", "Entries " + ", ".join(f"`{e}`" for e in foreign) + " came from a "
                "`--licence-file` at generate time and are not in synth's registry: their "
                "obligations are not repeated above; copy them from the run's own README.md."]
    return out


def render_curated_card(*, name: str, kept: "pl.DataFrame", summary: dict[str, Any],
                        rejected_rows: int, registry: Registry | None = None) -> str:
    """The card of a ``synth curate`` output: what it kept (``curated.parquet``), who taught
    it, the licence inherited from the kept rows' provenance, the recipe with its counts per
    step and reason, and the score columns present.

    The licence is recomputed from the rows (each teacher checked again, with the terms its
    rows recorded as accepted) for the narrowest intent the rows were generated for: a set
    mixing ``research`` and ``distributed`` rows is cleared for research only. The decisions
    recorded on the rows are listed too. Rows without provenance columns (a JSONL of
    ``id`` and ``response``) get a card that says their terms are unknown."""
    from synth.version import __version__

    registry = registry if registry is not None else load_registry()
    rows = provenance_groups(kept) if {"provider", "model"} <= set(kept.columns) else []
    unknown = kept.height - sum(r["n"] for r in rows)
    licence: Decision | None = None
    intents: list[str] = []
    if rows:
        licence, intents = inherited_licence(rows, registry)
    spdx = None if licence is None or unknown else licence.spdx
    out = _header(name=name, spdx=spdx, rows=kept.height, data_file="curated.parquet")
    out += [f"# {name}", "",
            f"Teacher traces curated with synth {__version__}: {kept.height:,} rows kept in "
            "`curated.parquet`. Curated rows keep every column they were generated with "
            "(provider, model, model version, parameters, request hash, cost, `licence_*`, "
            "`intent`, `accepted_terms`) plus the columns the curation steps added.", ""]
    out += _teacher_lines(teacher_summaries(rows)) + [""]
    if kept.height == 0:
        out += ["## Licence", "", "No rows were kept: there is nothing to license. The "
                "rejected rows keep their provenance in `rejects.parquet`."]
    elif licence is None:
        out += ["## Licence", "",
                "**Provenance unknown.** These rows carry no teacher or licence columns "
                "(provider, model, `licence_*`), so synth cannot tell under which terms they "
                "may be used. Check the terms of whatever made them before you train or "
                "publish a student.", "",
                "## Obligations a student trained on this data must carry", "",
                "- unknown: the rows do not say where they came from"]
    else:
        out += _licence_lines(licence, accepted_by="The rows were generated only because "
                              "the user passed `--accept-terms`")
        if len(intents) > 1:
            out += ["", f"The rows were generated for intents {', '.join(intents)}: the "
                    f"dataset as a whole is cleared for **{intents[0]}** only. Re-check it "
                    "for another use with `synth merge DIR --intent X --out NEW`."]
        if unknown:
            out += ["", f"**{unknown:,} rows carry no provenance**: their terms are unknown "
                    "and the decision above does not cover them."]
        if licence.needs_acceptance or licence.decision == "deny":
            out += ["", "Before you use this dataset: "
                    + "; ".join(licence.how_to_proceed or ["re-check its teachers' terms"])
                    + "."]
        out += [""] + _recorded_lines(rows, registry)
    out += [""] + curation_lines(summary, rejected_rows=rejected_rows)
    out += [""] + score_section(score_columns(kept))
    return "\n".join(out + _FOOTER)
