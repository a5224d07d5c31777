"""The options of ``synth curate``, declared once (:mod:`synth.options`): the CLI builds the
command from :class:`CurateConfig`, and :func:`synth.curate.curate` takes the same keywords
with the same defaults (tests/test_options.py pins them together); a pipeline's ``curate:``
takes ``filters``. Values are checked by ``curate``, whose messages name the option."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

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
    # the old spelling of --filters, from when filter sets were called curation recipes
    recipe: str | None = option(None, "Old name of --filters.", short="-r", hidden=True)
