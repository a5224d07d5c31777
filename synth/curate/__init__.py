"""Curation: trace rows in, a clean dataset plus every rejected row with its reason out.

``steps`` holds the built-in steps, ``recipe`` reads recipes (``filters/*.yaml``),
``runner`` applies them. Heavier steps (near-dedup, verification, quality scores) live in
their own modules and register themselves when imported.
"""

# imported for their side effect: each registers its steps
from synth.curate import decontam, embed, judge, langid, near_dedup, verify  # noqa: F401
from synth.curate.recipe import Recipe, load_recipe, recipe_names
from synth.curate.runner import CurationResult, curate, read_rows
from synth.curate.steps import STEPS, Step, Verdict, register_step

__all__ = ["curate", "read_rows", "CurationResult", "Recipe", "load_recipe", "recipe_names",
           "Step", "Verdict", "STEPS", "register_step"]
