"""Deprecated: curation recipes are now called filter sets; see
:mod:`synth.curate.filterset`. This module keeps the old names importable
(``Recipe``, ``load_recipe``, ``recipe_names``) for code written before the rename."""

import warnings

from synth.curate.filterset import FilterSet, Origin, build_step, filter_set_names, load_filter_set

__all__ = ["Recipe", "Origin", "load_recipe", "recipe_names", "build_step"]

Recipe = FilterSet
load_recipe = load_filter_set
recipe_names = filter_set_names

warnings.warn("synth.curate.recipe is deprecated: use synth.curate.filterset (FilterSet, "
              "load_filter_set, filter_set_names)", DeprecationWarning, stacklevel=2)
