"""Combine the traces of several runs (several teachers) into one dataset with one card.

The combined dataset inherits the most restrictive licence rule of any teacher whose rows it
keeps, and the union of their obligations; if that rule forbids the declared intent, the
merge fails before writing anything, unless the user accepts the entry (``accept``).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synth.dataset.card import render_card, teacher_summaries
from synth.errors import InputError
from synth.licences import Decision, check_rows, load_registry
from synth.records import TRACE_SCHEMA

__all__ = ["merge_runs"]


def _read(path: Path) -> pa.Table:
    src = path / "traces.parquet" if path.is_dir() else path
    if not src.exists():
        raise InputError("no traces.parquet here: expected a run directory of "
                         "`synth generate` or a traces file", path=str(path))
    table = pq.read_table(src)
    missing = [f.name for f in TRACE_SCHEMA if f.name not in table.column_names]
    if missing:
        raise InputError(f"not a synth traces file (missing {', '.join(missing)})",
                         path=str(src))
    return table.select(TRACE_SCHEMA.names).cast(TRACE_SCHEMA)


def merge_runs(runs: list[str | Path], *, out: str | Path, intent: str,
               accept: tuple[str, ...] = (), licence_file: str | Path | None = None,
               ok_only: bool = True) -> tuple[Path, Decision]:
    """Write ``out/traces.parquet`` and ``out/README.md`` from several runs' rows."""
    from synth.generate.run import write_atomic  # one atomic writer for every output

    tables = [_read(Path(r)) for r in runs]
    if ok_only:
        tables = [t.filter(pc.equal(t["status"], "ok")) for t in tables]
    ids = [x for t in tables for x in t["id"].to_pylist()]
    if len(set(ids)) != len(ids):  # runs over the same prompts: keep their rows apart
        tables = [t.set_column(t.schema.get_field_index("id"), "id",
                               pa.array([f"run{i}/{x}" for x in t["id"].to_pylist()],
                                        pa.string()))
                  for i, t in enumerate(tables)]
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise InputError("no rows to merge", path=", ".join(map(str, runs)))
    rows = table.select(["provider", "model", "base_url", "status", "input_tokens",
                         "output_tokens", "cost_usd", "model_version"]).to_pylist()
    decision = check_rows(rows, intent=intent, registry=load_registry(licence_file),
                          accept=accept)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "traces.parquet", table)
    write_atomic(out / "README.md", render_card(
        name=out.name, licence=decision, teachers=teacher_summaries(rows),
        rows=table.num_rows).encode())
    return out / "traces.parquet", decision
