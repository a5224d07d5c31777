"""Generation: prompts → teacher → trace rows. ``config`` defines every option once; ``run``
holds the exactly-once runner, imported on first call (it brings pyarrow and aiohttp), so
that importing synth stays cheap for commands that never generate."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["GenerateConfig", "RunResult", "agenerate", "generate"]


def generate(config: "GenerateConfig | None" = None, /, **kwargs: Any) -> "RunResult":
    """Run a generation job and wait for it: :func:`synth.generation.run.generate`. Pass a
    :class:`GenerateConfig` or its fields as keywords (overrides are validated as the CLI
    validates them)."""
    from synth.generation.run import generate as run

    return run(config, **kwargs)


async def agenerate(config: "GenerateConfig | None" = None, /, **kwargs: Any) -> "RunResult":
    """The async twin of :func:`generate`: :func:`synth.generation.run.agenerate`."""
    from synth.generation.run import agenerate as run

    return await run(config, **kwargs)


_HOME = {"GenerateConfig": "synth.generation.config", "RunResult": "synth.generation.run"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'synth.generation' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)


if TYPE_CHECKING:
    from synth.generation.config import GenerateConfig
    from synth.generation.run import RunResult
