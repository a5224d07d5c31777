"""synth: distil a big teacher model into a small student you can run yourself.

Data flow: prompts → teachers → traces → curate → dataset → train.
"""

from synth.errors import (
    ConfigError,
    InputError,
    SynthError,
    TeacherError,
    UserError,
)
from synth.generate import GenerateConfig, RunResult, agenerate, generate
from synth.inputs import read_prompts
from synth.records import TRACE_SCHEMA, Completion, Params, Prompt, Request
from synth.teachers import Teacher, TeacherOptions, make_teacher, register_provider

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # generation
    "generate",
    "agenerate",
    "GenerateConfig",
    "RunResult",
    "read_prompts",
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
