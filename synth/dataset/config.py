"""The options of ``synth merge`` and ``synth export``, declared once (:mod:`synth.options`):
the CLI builds both commands from these models, and :func:`~synth.dataset.merge_runs` /
:func:`~synth.dataset.export.export_run` take the same keywords with the same defaults
(tests/test_options.py pins them together). Values are checked by the functions, whose
messages name the option."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from synth.options import option

__all__ = ["MergeConfig", "ExportConfig"]

_INTENT = "What the merged data is for: research | internal | distributed | competing."


class MergeConfig(BaseModel):
    """Everything ``synth merge`` takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    command: ClassVar[str] = "merge"

    runs: list[Path] = option(..., "Run directories, `synth curate` output directories or "
                              ".parquet files of trace rows.", cli="RUNS")
    out: Path = option(..., "Where the merged dataset goes: traces.parquet, README.md (the "
                       "card), merge.json.", short="-o")
    intent: Literal["research", "internal", "distributed", "competing"] = option(..., _INTENT)
    accept_terms: tuple[str, ...] = option((), "Accept a registry entry's deny or warn (or "
                                           "'unknown' terms) after reading them. Repeatable.")
    licence_file: Path | None = option(None, "YAML registry entries adding to or overriding "
                                       "the built-in licence registry.")


class ExportConfig(BaseModel):
    """Everything ``synth export`` takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    command: ClassVar[str] = "export"

    source: Path = option(..., "A run directory (synth run, curate or generate) or a "
                          "parquet/JSONL file of trace rows; for gguf, a student directory "
                          "(synth train's --out).", cli="SOURCE")
    format: Literal["hf", "chat-jsonl", "openai-finetune", "gguf"] = option(
        ..., "hf (datasets on disk: needs the export extra) | chat-jsonl (TRL, axolotl) | "
        "openai-finetune | gguf (a trained student for llama.cpp).", short="-f")
    out: Path = option(..., "Where the export goes (for gguf: the .gguf file).", short="-o")
    quant: Literal["f16", "q8_0", "q4_0", "q4_k_m"] | None = option(
        None, "gguf only: f16 | q8_0 (default) | q4_0 | q4_k_m (needs llama.cpp's "
        "llama-quantize on PATH).")
    split: float | None = option(None, "Train share (e.g. 0.9); the rest is the test split, "
                                 "whole prompts on one side.")
    reasoning: Literal["keep", "drop"] | None = option(
        None, "keep | drop the reasoning trace (default: drop for openai-finetune, else "
        "keep).")
    seed: int = option(0, "Seed of the split.")
