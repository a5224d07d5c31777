"""Rows → datasets: the dataset card today; chat examples and export come with training."""

from synth.dataset.card import render_card, teacher_summaries
from synth.dataset.merge import merge_runs

__all__ = ["render_card", "teacher_summaries", "merge_runs"]
