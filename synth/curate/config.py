"""The options of ``synth curate``, declared once (:mod:`synth.options`): the CLI builds the
command from :class:`CurateConfig`, and :func:`synth.curate.curate` takes the same keywords
with the same defaults (tests/test_options.py pins them together); a pipeline's ``curate:``
takes ``filters`` and ``engine``. Values are checked by ``curate``, whose messages name the option."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from synth.options import option

__all__ = ["CurateConfig"]


class CurateConfig(BaseModel):
    """Everything ``synth curate`` takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    command: ClassVar[str] = "curate"

    input: Path = option(..., "Trace rows: a run directory, traces.parquet or JSONL (needs id "
                         "and response).", cli="INPUT")
    filters: str | None = option(None, "A shipped filter set name (filters/NAME.yaml) or a "
                                 "YAML path; default: default.", short="-f")
    out: Path | None = option(None, "Writes curated.parquet, rejects.parquet, curation.json.",
                              short="-o", cli_required=True)
    engine: Literal["local", "ray"] = option(
        "local", "Where the steps run: this process (local) or Ray Data (ray: needs "
        "synth[ray]; input a parquet file, a directory or glob of shards, or a URI).")
    ray_address: str | None = option(None, "With --engine ray: the cluster to join "
                                     "(ray://host:10001, host:6379 or auto); default: "
                                     "start a local Ray.")
    # the old spelling of --filters, from when filter sets were called curation recipes
    recipe: str | None = option(None, "Old name of --filters.", short="-r", hidden=True)
