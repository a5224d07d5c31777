"""Rows → datasets: the dataset cards (run, curated, merged), merging runs, and export
(HF datasets, chat JSONL, OpenAI fine-tuning JSONL; :mod:`synth.dataset.export`, imported
on use)."""

from synth.dataset.card import (
    render_card,
    render_curated_card,
    score_columns,
    teacher_decisions,
    teacher_summaries,
)
from synth.dataset.merge import merge_runs

__all__ = ["render_card", "render_curated_card", "score_columns", "teacher_decisions",
           "teacher_summaries", "merge_runs"]
