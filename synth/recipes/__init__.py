"""Generation recipes: ways to turn a task description into prompts a teacher answers.

Each recipe is one module, registered by name for pipelines (``recipe: cot``):

* ``responses`` — prompts → answers (Alpaca-style response distillation)
* ``cot`` — N reasoning samples per prompt, only verified ones kept (rejection sampling)
* ``textbook`` — seed topics → subtopics → topic × audience × style × format documents
* ``self_instruct`` — grow a task pool from seed tasks (ROUGE-L ≤ 0.7), then answer it
* ``evol`` — Evol-Instruct in-depth / in-breadth evolution with the elimination rules

The shared machinery (teachers, routing, prompts from templates) is in
:mod:`synth.recipes.base`.
"""

# Importing a recipe module registers it.
from synth.recipes import cot, evol, responses, self_instruct, textbook  # noqa: E402,F401
from synth.recipes.base import (
    RECIPES,
    PlannedCall,
    Recipe,
    RecipeParams,
    RecipeResult,
    TeacherRoute,
    Teaching,
    get_recipe,
    register_recipe,
)

__all__ = ["RECIPES", "PlannedCall", "Recipe", "RecipeParams", "RecipeResult",
           "TeacherRoute", "Teaching", "get_recipe", "register_recipe"]
