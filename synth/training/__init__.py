"""⑥ The student trainer: trace rows → a smaller model that imitates the teacher.

``data`` (rows → token ids, masks, packing, stored top-K targets), ``losses`` (CE, forward /
reverse KL, JSD; chunked through the output head), ``student`` (resolve a spec, cut a student
from its teacher, vocabulary checks), ``recipe`` (setup → train → save), ``evaluate``
(student vs teacher), ``card`` and ``plot`` (what a run leaves behind).

:func:`train` and :func:`evaluate` are light wrappers: importing synth does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["train", "evaluate", "TrainConfig", "EvalConfig", "TrainResult"]


def train(config: "TrainConfig | None" = None, /, **kwargs: Any) -> "TrainResult":
    """Train a student: :func:`synth.training.recipe.train`. Pass a :class:`TrainConfig` or its
    fields as keywords (``data=``, ``student=``, ``out=``, ``loss=``, ``teacher=``...)."""
    from synth.training.recipe import train as run

    return run(config, **kwargs)


def evaluate(config: "EvalConfig | None" = None, /, **kwargs: Any) -> dict[str, Any]:
    """Compare a student with its teacher: :func:`synth.training.evaluation.evaluate`; returns
    what ``eval.json`` holds."""
    from synth.training.evaluation import evaluate as run

    return run(config, **kwargs)


_HOME = {"TrainConfig": "synth.training.config", "EvalConfig": "synth.training.config",
         "TrainResult": "synth.training.recipe"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'synth.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)


if TYPE_CHECKING:
    from synth.training.config import EvalConfig, TrainConfig
    from synth.training.recipe import TrainResult
