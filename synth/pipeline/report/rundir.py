"""Reading a run directory for the report: JSON, JSON lines and parquet files that may be
absent or damaged, and the small lookups every figure shares (a row's stage and teacher, a
manifest stage's status). Nothing here raises on a bad file: it is noted in ``problems``
and the report says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import polars as pl

__all__ = ["RunDir", "stage_of", "teacher_of", "parse_meta", "reason_name",
           "effective_status", "manifest_status"]


class RunDir:
    """The files of a run directory; anything unreadable is noted in ``problems``."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.problems: list[str] = []

    def json(self, rel: str) -> Any:
        p = self.dir / rel
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            self.problems.append(f"{rel}: cannot be read ({e})")
            return None

    def jsonl(self, rel: str) -> list[dict[str, Any]] | None:
        p = self.dir / rel
        if not p.is_file():
            return None
        out = []
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            self.problems.append(f"{rel}: cannot be read ({e})")
            return None
        bad = 0
        for ln in lines:
            if not ln.strip():
                continue
            try:
                obj = json.loads(ln)
            except ValueError:
                bad += 1
                continue
            if isinstance(obj, dict):
                out.append(obj)
        if bad:
            self.problems.append(f"{rel}: {bad} line(s) are not JSON and were left out")
        return out

    def text(self, rel: str) -> str | None:
        p = self.dir / rel
        if not p.is_file():
            return None
        try:
            return p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            self.problems.append(f"{rel}: cannot be read ({e})")
            return None

    def num_rows(self, rel: str) -> int | None:
        """Rows of a parquet file from its footer; ``None`` when it is absent."""
        p = self.dir / rel
        if not p.is_file():
            return None
        try:
            import pyarrow.parquet as pq

            return pq.ParquetFile(p).metadata.num_rows
        except Exception as e:  # a damaged file: the report says so and goes on
            self.problems.append(f"{rel}: cannot be read ({type(e).__name__}: {e})")
            return None

    def table(self, rel: str, columns: Iterable[str]) -> pl.DataFrame | None:
        """The ``columns`` of a parquet file that it has; ``None`` when it is absent."""
        p = self.dir / rel
        if not p.is_file():
            return None
        try:
            import pyarrow.parquet as pq

            names = pq.read_schema(p).names
            t = pq.read_table(p, columns=[c for c in columns if c in names])
            return pl.from_arrow(t) if t.num_columns else pl.DataFrame(
                {"_": [None] * t.num_rows})
        except Exception as e:  # a damaged file: the report says so and goes on
            self.problems.append(f"{rel}: cannot be read ({type(e).__name__}: {e})")
            return None


def stage_of(df: pl.DataFrame) -> pl.Series:
    """The generate stage of each row: the ``stage`` column, else the id's prefix."""
    if "stage" in df.columns:
        return df["stage"].cast(pl.String)
    if "id" in df.columns:
        return df["id"].cast(pl.String).str.split("/").list.first()
    return pl.Series("stage", [None] * df.height, dtype=pl.String)


def teacher_of(provider: Any, model: Any, specs: list[str]) -> str:
    """The teacher spec among ``specs`` that answered with ``provider`` / ``model``."""
    spec = f"{provider}:{model}"
    if spec in specs:
        return spec
    for s in specs:
        p, _, m = s.partition(":")
        if p == provider and model is not None and (m == model or str(model).endswith(m)):
            return s
    return specs[0] if len(specs) == 1 else spec


def parse_meta(raw: Any) -> dict[str, Any]:
    """A row's ``metadata`` (a JSON string or a dict) as a dict; ``{}`` when it is not one."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return {}
    try:
        m = json.loads(raw)
    except ValueError:
        return {}
    return m if isinstance(m, dict) else {}


def reason_name(r: Any) -> str:
    """A drop reason's name: the text before its first colon (``too short: 2 words``)."""
    return str(r).split(":", 1)[0] if r is not None else "unknown"


def effective_status(entry: dict[str, Any] | None) -> str | None:
    """``skipped`` for a finished stage this run did not redo (``status_last_run``), else
    the manifest's status (``done``, ``running`` for one that was interrupted...)."""
    if not isinstance(entry, dict):
        return None
    if entry.get("status") == "done" and entry.get("status_last_run") == "skipped":
        return "skipped"
    return entry.get("status")


def manifest_status(manifest: dict[str, Any], *names: str) -> str | None:
    """The status of the manifest stage called one of ``names``."""
    stages = manifest.get("stages") or {}
    for n in names:
        if n in stages:
            return effective_status(stages[n])
    return None
