"""Combine the rows of several runs (several teachers, curated or not) into one dataset with
one card.

Inputs: a ``synth generate`` run directory (``traces.parquet``), a ``synth curate`` output
directory (``curated.parquet``, with ``curation.json`` beside it), or a ``.parquet`` file of
trace rows. Every column is kept: the trace columns cast to ``TRACE_SCHEMA``, the columns
curation added (``quality``, ``judge_score``, ``cluster_id``, ``math_verdict``...) as the
union across inputs, null where an input lacks one. Cluster ids (``cluster_id``,
``semantic_cluster``) are offset per input so that clusters of different inputs never share
an id. Rows keep the provenance columns they were generated with.

The combined dataset inherits the most restrictive licence rule of any teacher whose rows it
keeps, and the union of their obligations. Before anything is written:

* a rule that forbids the declared intent fails the merge (``LicenceDeniedError``, exit 6)
  unless the user accepts that entry (``accept_terms``);
* a teacher the registry knows nothing about fails it (``TermsNotAcceptedError``, exit 7),
  as in ``synth generate``, unless ``accept_terms`` holds ``unknown``.

Terms accepted at generate time (``accepted_terms`` on the rows) count for that teacher's
rows when the run's intent is the merge's intent or a broader one (an acceptance for
``distributed`` covers ``internal``; one for ``research`` does not cover ``distributed``):
see :func:`synth.dataset.card.acceptance_covers`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synth.dataset.card import (
    acceptance_covers,
    curation_lines,
    provenance_groups,
    render_card,
    score_columns,
    score_section,
    teacher_decisions,
    teacher_summaries,
)
from synth.errors import (
    ConfigError,
    InputError,
    LicenceDeniedError,
    TermsNotAcceptedError,
)
from synth.licences import INTENTS, Decision, Registry, inherit, load_registry
from synth.records import TRACE_SCHEMA

__all__ = ["merge_runs"]

_EXPECTED = ("expected a run directory of `synth generate` (traces.parquet), an output "
             "directory of `synth curate` (curated.parquet) or a .parquet file of trace rows")
_CLUSTER_COLUMNS = ("cluster_id", "semantic_cluster")


@dataclass
class _Input:
    given: Path  # as the user named it
    src: Path  # the parquet file read
    table: pa.Table
    curation: dict[str, Any] | None  # curation.json beside a curated.parquet
    curation_note: str | None = None  # why a curated input has no curation summary


def _locate(path: Path) -> tuple[Path, Path | None]:
    """The parquet file to read for ``path`` (:func:`synth.rows.locate`) and the
    curation.json that may describe it."""
    from synth import rows as R

    where = R.locate(path, expected=_EXPECTED)
    src = where.file
    try:
        with open(src, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path=str(src)) from None
    if magic != b"PAR1":
        raise InputError(f"not a parquet file; {_EXPECTED}", path=str(src))
    curated = where.kind in ("curated", "pipeline-curated")
    return src, where.curation or (src.with_name("curation.json") if curated else None)


def _plain(t: pa.DataType) -> pa.DataType:
    """One spelling per type, so that polars' ``large_string`` and Arrow's ``string`` of
    two inputs are the same column type."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_list(t):
        return pa.list_(_plain(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain(f.type)) for f in t])
    return t


#: Trace columns added after runs already existed: an older run's rows lack them.
_ADDED_LATER = ("batch_id", "served_by")


def _read(given: Path) -> _Input:
    src, curation_json = _locate(given)
    try:
        table = pq.read_table(src)
    except (OSError, pa.ArrowException) as e:  # a truncated or corrupt file
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise InputError(f"not a readable parquet file: {first}", path=str(src)) from None
    from synth import rows as R

    R.check_table(table, src)  # no held-out or dropped rows in a dataset
    for name in _ADDED_LATER:  # rows made before the column existed: null, as it was
        if name not in table.column_names:
            table = table.append_column(TRACE_SCHEMA.field(name),
                                        pa.nulls(len(table), TRACE_SCHEMA.field(name).type))
    missing = [f.name for f in TRACE_SCHEMA if f.name not in table.column_names]
    if missing:
        raise InputError(f"not synth trace rows (missing {', '.join(missing)}): merge needs "
                         "rows made by `synth generate`, or curated from them", path=str(src))
    columns, fields = [], []
    for f in TRACE_SCHEMA:
        try:
            columns.append(table[f.name].cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise InputError(f"has type {table.schema.field(f.name).type}, expected {f.type} "
                             f"({str(e).splitlines()[0]})", path=str(src),
                             field=f.name) from None
        fields.append(f)
    for name in table.column_names:
        if name in TRACE_SCHEMA.names:
            continue
        col = table[name]
        plain = _plain(col.type)
        columns.append(col.cast(plain) if plain != col.type else col)
        fields.append(pa.field(name, plain))
    curation, note = None, None
    if curation_json is not None:
        try:
            curation = orjson.loads(curation_json.read_bytes())
        except FileNotFoundError:
            note = "no curation.json beside it"
        except (OSError, orjson.JSONDecodeError):
            note = "its curation.json is unreadable"
        if curation is not None and not isinstance(curation, dict):
            curation, note = None, "its curation.json is not a curation summary"
    return _Input(given, src, pa.Table.from_arrays(columns, schema=pa.schema(fields)),
                  curation, note)


def _unify(inputs: list[_Input]) -> pa.Schema:
    """TRACE_SCHEMA, then every other column in first-seen order, one type each."""
    seen: dict[str, list[tuple[pa.DataType, Path]]] = {}
    for inp in inputs:
        for f in inp.table.schema:
            if f.name not in TRACE_SCHEMA.names:
                seen.setdefault(f.name, []).append((f.type, inp.src))
    fields = list(TRACE_SCHEMA)
    for name, types in seen.items():
        typed = [(t, src) for t, src in types if not pa.types.is_null(t)] or types[:1]
        t0, src0 = typed[0]
        for t, src in typed[1:]:
            if t == t0:
                continue
            try:
                t0 = pa.unify_schemas([pa.schema([(name, t0)]), pa.schema([(name, t)])],
                                      promote_options="permissive").field(name).type
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                raise InputError(f"has type {t0} in {src0} but {t} in {src}: the inputs "
                                 "disagree on this column; rename or cast it in one of them",
                                 path=f"{src0}, {src}", field=name) from None
        fields.append(pa.field(name, t0))
    return pa.schema(fields)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = [table[f.name].cast(f.type) if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _offset_clusters(tables: list[pa.Table]) -> list[pa.Table]:
    """Cluster ids are row numbers within one curation: shift each input's past the last."""
    out = list(tables)
    for name in _CLUSTER_COLUMNS:
        if name not in tables[0].column_names or not pa.types.is_integer(
                tables[0].schema.field(name).type):
            continue
        offset = 0
        for i, t in enumerate(out):
            col = t[name]
            shifted = pc.add(col, pa.scalar(offset, col.type)) if offset else col
            top = pc.max(col).as_py()
            out[i] = t.set_column(t.schema.get_field_index(name), name, shifted)
            if top is not None:
                offset += top + 1
    return out


def _licence(rows: list[dict[str, Any]], *, intent: str, accept: tuple[str, ...],
             registry: Registry) -> Decision:
    parts = teacher_decisions(rows, intent=intent, registry=registry, accept=accept)
    combined = inherit([d for _, d in parts], intent)
    if combined.decision == "deny":
        denied = [(f"{p}:{m}", d) for (p, m, _), d in parts if d.decision == "deny"]
        how = "; or ".join(denied[0][1].how_to_proceed) or "pass --accept-terms with the " \
            "entry id"
        raise LicenceDeniedError(
            f"licence: rows from {', '.join(t for t, _ in denied)} may not be used for "
            f"intent '{intent}': {denied[0][1].denied_by[0]}; drop those inputs, or {how}",
            combined)
    if combined.needs_acceptance:
        blocked = [(key, d) for key, d in parts if d.needs_acceptance]
        names = [f"{p}:{m}" for (p, m, _), _ in blocked]
        keys = {key for key, _ in blocked}
        known = {e.id for e in registry.entries}
        earlier = sorted({r.get("intent") or "research" for r in rows
                          if (r["provider"], r["model"], r.get("base_url")) in keys
                          and "unknown" in (r.get("accepted_terms") or ())
                          and not acceptance_covers(r.get("intent"), intent)})
        foreign = sorted({e for r in rows
                          if (r["provider"], r["model"], r.get("base_url")) in keys
                          for e in (r.get("licence_entries") or ()) if e not in known})
        note = ""
        if earlier:
            note += (f" (their run accepted unknown terms for intent {', '.join(earlier)}, "
                     f"which does not cover '{intent}')")
        if foreign:
            note += (f" (the rows were checked against {', '.join(foreign)}: pass the "
                     "--licence-file that defines them)")
        d = blocked[0][1]
        raise TermsNotAcceptedError(
            f"licence: rows from {', '.join(names)}: {d.reasons[0]}; "
            f"{d.how_to_proceed[-1]}{note}", combined)
    return combined


def _curation_section(inputs: list[_Input]) -> list[str]:
    out = ["## Inputs and their curation", "",
           "| input | rows merged | filter set | rows in → kept |", "|---|---:|---|---|"]
    for inp in inputs:
        c = inp.curation
        if inp.src.name != "curated.parquet" and c is None:
            recipe, counts = "not curated", "-"
        elif c is None:
            recipe, counts = f"unknown ({inp.curation_note})", "-"
        else:
            path = c.get("filter_set_file", c.get("recipe_file"))  # older: recipe_*
            where = f" (`{path}`)" if path else ""
            recipe = f"**{c.get('filter_set', c.get('recipe'))}**{where}"
            counts = f"{c.get('input_rows', '?')} → {c.get('kept', '?')}"
        out.append(f"| `{inp.src}` | {inp.table.num_rows:,} | {recipe} | {counts} |")
    for inp in inputs:
        if inp.curation and inp.curation.get("steps"):
            sub = curation_lines(inp.curation, rejected_rows=inp.curation.get("rejected", 0),
                                 rejects=f"`{inp.src.with_name('rejects.parquet')}`")
            out += ["", f"### `{inp.src}`", ""] + sub[2:]  # without the "## Curation" title
    return out


def merge_runs(runs: list[str | Path], *, out: str | Path, intent: str,
               accept_terms: tuple[str, ...] = (), licence_file: str | Path | None = None,
               ok_only: bool = True, accept: tuple[str, ...] | None = None
               ) -> tuple[Path, Decision]:
    """Write ``out/traces.parquet``, ``out/README.md`` and ``out/merge.json`` (what was
    merged) from several inputs' rows. ``out`` is new, empty or an earlier merge's
    (:func:`synth.io.claim_out_dir`).

    Checked in this order, and nothing is written unless all pass: ``intent`` and ``out``
    (a ``ConfigError`` before any input is read), ``accept_terms`` (known registry ids or
    ``unknown``), each input (an ``InputError`` naming it: missing, not a run or curate
    directory or parquet, unreadable, not trace rows, columns whose types disagree), then
    the licence (deny: exit 6; unknown terms not accepted: exit 7; see the module docstring
    for when acceptances recorded on the rows count)."""
    from synth.io import (
        check_not_input,
        claim_out_dir,
        commit_staged,
        exclusive_dir,
        make_out_dir,
        staging_dir,
        write_atomic,
    )

    if accept is not None:  # its name before it took generate's word, accept_terms
        if accept_terms:
            raise TypeError("merge_runs() takes accept_terms= or its old name accept=, not both")
        import warnings

        warnings.warn("merge_runs(accept=...) is deprecated: use accept_terms=",
                      DeprecationWarning, stacklevel=2)
        accept_terms = accept
    if intent not in INTENTS:
        raise ConfigError(f"--intent: must be one of {', '.join(INTENTS)}")
    if not runs:
        raise ConfigError("merge: nothing to merge (name at least one run directory)")
    paths = [Path(r) for r in runs]
    check_not_input(Path(out), paths, why="merging into it would overwrite its rows")
    out = claim_out_dir(out, "synth merge")
    accept = tuple(accept_terms)
    registry = load_registry(licence_file)
    registry.check_accepted(accept)

    inputs = [_read(p) for p in paths]
    schema = _unify(inputs)
    tables = [_conform(inp.table, schema) for inp in inputs]
    if ok_only:
        tables = [t.filter(pc.equal(t["status"], "ok")) for t in tables]
    for inp, t in zip(inputs, tables):
        inp.table = t
    ids = [x for t in tables for x in t["id"].to_pylist()]
    if len(set(ids)) != len(ids):  # runs over the same prompts: keep their rows apart
        tables = [t.set_column(t.schema.get_field_index("id"), "id",
                               pa.array([f"run{i}/{x}" for x in t["id"].to_pylist()],
                                        pa.string()))
                  for i, t in enumerate(tables)]
    tables = _offset_clusters(tables)
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise InputError("no rows to merge" + (" with status ok" if ok_only else ""),
                         path=", ".join(map(str, runs)))
    import polars as pl

    from synth.version import __version__

    frame = pl.from_arrow(table)
    rows = provenance_groups(frame)  # one per distinct teacher and licence record
    if sum(r["n"] for r in rows) != table.num_rows:
        raise InputError("some rows name no provider or model: merge needs the provenance "
                         "`synth generate` records", path=", ".join(map(str, runs)),
                         field="provider")
    decision = _licence(rows, intent=intent, accept=accept, registry=registry)
    scores = score_columns(frame)
    intro = (f"Merged with synth {__version__} from {len(inputs)} inputs: {table.num_rows} "
             "rows. Every row keeps the columns it was generated with (provider, model, "
             "model version, parameters, request hash, cost, and the `licence_*`, `intent` "
             "and `accepted_terms` of its own run) and the columns curation added; the "
             f"licence below is the merged dataset's, for intent '{intent}'.")
    card = render_card(name=out.name, licence=decision, teachers=teacher_summaries(rows),
                       rows=table.num_rows, intro=intro,
                       accepted_by="The merge was allowed only because terms were accepted "
                       "(with `--accept-terms`, or recorded on the rows: see Why above)",
                       sections=[_curation_section(inputs), score_section(scores)])
    created = not out.exists()
    make_out_dir(out)
    try:
        # one writer per directory (a run's own merge: already held); staged, so a failed
        # write leaves the earlier merge (or nothing) in place
        with exclusive_dir(out), staging_dir(out) as stage:
            write_atomic(stage / "traces.parquet", table)
            write_atomic(stage / "README.md", card)
            write_atomic(stage / "merge.json", orjson.dumps({
                "synth_version": __version__, "merged_from": [str(p) for p in paths],
                "rows": table.num_rows, "intent": intent,
                "licence": {"decision": decision.decision, "rule": decision.rule},
                "files": ["README.md", "merge.json", "traces.parquet"]},
                option=orjson.OPT_INDENT_2))
            commit_staged(stage, out)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return out / "traces.parquet", decision
