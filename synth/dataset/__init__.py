"""Rows → datasets: the dataset cards (run, curated, merged) and merging; chat examples and
export come with training."""

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
