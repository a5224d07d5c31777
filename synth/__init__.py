"""synth: distil a big teacher model into a small student you can run yourself.

Data flow: prompts → teachers → traces → curate → dataset → train.

The names below load on first use (PEP 562): ``import synth`` costs a few milliseconds, so
``synth --help`` and ``synth licence check`` start at once, and the generation runner
(pyarrow, aiohttp, pydantic) is imported only by the commands that run it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# synth.generate and synth.train are packages that are also their verbs (callable modules,
# synth/callable_module.py): `synth.train(...)` trains and `import synth.train.config` works,
# and no function is ever bound over a subpackage.
import synth.generate as generate  # noqa: E402
import synth.train as train  # noqa: E402
from synth.errors import (
    ConfigError,
    InputError,
    SynthError,
    TeacherError,
    UserError,
)
from synth.generate import agenerate  # noqa: E402
from synth.train import evaluate  # noqa: E402
from synth.version import __version__


def run(pipeline: Any, /, **kwargs: Any) -> Any:
    """Run or resume a pipeline file (``synth run``): generate stages → curate → train →
    eval → report.html in one run directory. See :mod:`synth.pipeline.run`."""
    from synth.pipeline.run import run_pipeline

    return run_pipeline(pipeline, **kwargs)


def estimate(pipeline: Any, /, **kwargs: Any) -> dict:
    """Requests, tokens and cost of a pipeline's generate stages before spending
    (``synth estimate``). See :mod:`synth.pipeline.estimate`."""
    from synth.pipeline.estimate import estimate_pipeline

    return estimate_pipeline(pipeline, **kwargs)


def export(source: Any, /, **kwargs: Any) -> Any:
    """Export rows as HF datasets, chat JSONL or OpenAI fine-tuning JSONL (``synth
    export``). See :mod:`synth.dataset.export`."""
    from synth.dataset.export import export_run

    return export_run(source, **kwargs)


_LAZY = {  # public name → the module that defines it
    "GenerateConfig": "synth.generate.config",
    "RunResult": "synth.generate.run",
    "read_prompts": "synth.inputs",
    "Prompt": "synth.records",
    "Params": "synth.records",
    "Request": "synth.records",
    "Completion": "synth.records",
    "TRACE_SCHEMA": "synth.records",
    "Teacher": "synth.teachers",
    "TeacherOptions": "synth.teachers",
    "make_teacher": "synth.teachers",
    "register_provider": "synth.teachers",
    "TrainConfig": "synth.train.config",
    "EvalConfig": "synth.train.config",
    "TrainResult": "synth.train.trainer",
}

__all__ = [
    "__version__",
    # generation
    "generate",
    "agenerate",
    "GenerateConfig",
    "RunResult",
    "read_prompts",
    # pipelines
    "run",
    "estimate",
    "export",
    # training
    "train",
    "evaluate",
    "TrainConfig",
    "EvalConfig",
    "TrainResult",
    # records
    "Prompt",
    "Params",
    "Request",
    "Completion",
    "TRACE_SCHEMA",
    # teachers
    "Teacher",
    "TeacherOptions",
    "make_teacher",
    "register_provider",
    # errors (the full tree lives in synth.errors)
    "SynthError",
    "UserError",
    "ConfigError",
    "InputError",
    "TeacherError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'synth' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # for type checkers and IDEs: the eager imports
    from synth.generate.config import GenerateConfig
    from synth.generate.run import RunResult
    from synth.inputs import read_prompts
    from synth.records import TRACE_SCHEMA, Completion, Params, Prompt, Request
    from synth.teachers import Teacher, TeacherOptions, make_teacher, register_provider
    from synth.train.config import EvalConfig, TrainConfig
    from synth.train.trainer import TrainResult
