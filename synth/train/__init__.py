"""⑥ The student trainer: trace rows → a smaller model that imitates the teacher.

``data`` (rows → token ids, masks, packing, stored top-K targets), ``losses`` (CE, forward /
reverse KL, JSD; chunked through the output head), ``student`` (resolve a spec, cut a student
from its teacher, vocabulary checks), ``trainer`` (setup → train → save), ``evaluation``
(student vs teacher), ``card`` and ``plot`` (what a run leaves behind).

:func:`train` and :func:`evaluate` are light wrappers: importing synth does not import torch.
The package is itself callable (``synth.train(...)`` is :func:`train`), so the API's verb and
the package it lives in are one object and ``import synth.train.config`` never rebinds it.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

__all__ = ["train", "evaluate", "TrainConfig", "EvalConfig", "TrainResult"]


def train(config: "TrainConfig | None" = None, /, **kwargs: Any) -> "TrainResult":
    """Train a student: :func:`synth.train.trainer.train`. Pass a :class:`TrainConfig` or its
    fields as keywords (``data=``, ``student=``, ``out=``, ``loss=``, ``teacher=``...)."""
    from synth.train.trainer import train as run

    return run(config, **kwargs)


def evaluate(config: "EvalConfig | None" = None, /, **kwargs: Any) -> dict[str, Any]:
    """Compare a student with its teacher: :func:`synth.train.evaluation.evaluate`; returns
    what ``eval.json`` holds."""
    from synth.train.evaluation import evaluate as run

    return run(config, **kwargs)


_HOME = {"TrainConfig": "synth.train.config", "EvalConfig": "synth.train.config",
         "TrainResult": "synth.train.trainer"}


from synth.callable_module import make_callable  # noqa: E402

make_callable(sys.modules[__name__], train)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'synth.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)


if TYPE_CHECKING:
    from synth.train.config import EvalConfig, TrainConfig
    from synth.train.trainer import TrainResult
