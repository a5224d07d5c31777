"""Input tokens: which counter counts a teacher's prompts, and how a dry run calibrates it.

The counter is the provider's own (its ``token_counter`` trait, e.g. a local model's
tokenizer with its chat template) when it can be had cheaply, else
:func:`~synth.teachers.estimate_tokens`, scaled by the prompt tokens the provider reported
for the dry run's prompts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synth.records import Prompt
    from synth.teachers.base import TokenCount

__all__ = ["prompt_counter", "calibration", "mean_tokens"]


def prompt_counter(provider: str, model: str) -> tuple[TokenCount, str, str | None]:
    """``(count(messages) -> tokens, counter name, why not the provider's own counter)``."""
    from synth.teachers import estimate_tokens, provider_traits

    own = provider_traits(provider).token_counter
    if own is None:
        return estimate_tokens, "estimate_tokens", None
    try:
        count, why = own(model)
    except Exception as exc:  # a plugin's counter, never a reason to fail the estimate
        count, why = None, f"tokenizer unavailable ({type(exc).__name__}: {exc})"
    if count is None:
        return estimate_tokens, "estimate_tokens", why
    return count, "tokenizer", None


def calibration(count: TokenCount, ok: list[dict[str, Any]],
                prompts: dict[str, Prompt]) -> float | None:
    """Reported over counted prompt tokens for the dry run's answered rows (``ok``);
    None when either is zero."""
    reported = sum(r["input_tokens"] or 0 for r in ok)
    counted = sum(count(prompts[r["prompt_id"]].messages) for r in ok)
    return reported / counted if reported > 0 and counted > 0 else None


def mean_tokens(count: TokenCount, prompts: list[Prompt]) -> float:
    return sum(count(p.messages) for p in prompts) / len(prompts)
