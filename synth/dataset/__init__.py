"""Rows → datasets: the dataset card today; chat examples and export come with training."""

from synth.dataset.card import render_card, teacher_summary

__all__ = ["render_card", "teacher_summary"]
