"""Curation: trace rows in, a clean dataset plus every rejected row with its reason out.

``steps`` holds the built-in steps and the step protocol, ``filterset`` reads filter sets
(``filters/*.yaml``), ``runner`` applies them. Heavier steps (near-dedup, verification,
quality scores) live in their own modules and register themselves when imported.
"""

import warnings

# imported for their side effect: each registers its steps
from synth.curate import decontam, embed, judge, langid, near_dedup, verify  # noqa: F401
from synth.curate.filterset import FilterSet, filter_set_names, load_filter_set
from synth.curate.runner import CurationResult, curate, read_rows
from synth.curate.steps import STEPS, Step, StepContext, Verdict, register_step

__all__ = ["curate", "read_rows", "CurationResult", "FilterSet", "load_filter_set",
           "filter_set_names", "Step", "StepContext", "Verdict", "STEPS", "register_step"]

# the names of filter sets from when they were called curation recipes: still importable,
# with a DeprecationWarning, and not part of __all__
_OLD_NAMES = {"Recipe": "FilterSet", "load_recipe": "load_filter_set",
              "recipe_names": "filter_set_names"}


def __getattr__(name: str):
    new = _OLD_NAMES.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"synth.curate.{name} is deprecated: use synth.curate.{new} (curation "
                  "recipes are now called filter sets)", DeprecationWarning, stacklevel=2)
    return globals()[new]
