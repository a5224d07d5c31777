"""Generation: prompts → teacher → trace rows. ``config`` defines every option once; ``run``
holds the exactly-once runner, imported on first call (it brings pyarrow and aiohttp), so
that importing synth stays cheap for commands that never generate.

The package is itself callable (``synth.generate(...)`` is :func:`generate`), so the API's verb
and the package it lives in are one object and ``import synth.generate.config`` never rebinds it.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

__all__ = ["GenerateConfig", "RunResult", "agenerate", "generate"]


def generate(config: "GenerateConfig | None" = None, /, **kwargs: Any) -> "RunResult":
    """Run a generation job and wait for it: :func:`synth.generate.run.generate`. Pass a
    :class:`GenerateConfig` or its fields as keywords (overrides are validated as the CLI
    validates them)."""
    from synth.generate.run import generate as run

    return run(config, **kwargs)


async def agenerate(config: "GenerateConfig | None" = None, /, **kwargs: Any) -> "RunResult":
    """The async twin of :func:`generate`: :func:`synth.generate.run.agenerate`."""
    from synth.generate.run import agenerate as run

    return await run(config, **kwargs)


_HOME = {"GenerateConfig": "synth.generate.config", "RunResult": "synth.generate.run"}


from synth.callable_module import make_callable  # noqa: E402

make_callable(sys.modules[__name__], generate)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'synth.generate' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)


if TYPE_CHECKING:
    from synth.generate.config import GenerateConfig
    from synth.generate.run import RunResult
