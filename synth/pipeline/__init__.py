"""Pipelines: one YAML file, one run directory, every stage of a distillation.

``config`` (the pipeline file, validated with file:line:key errors), ``run`` (stages,
manifest, skip and resume), ``estimate`` (requests, tokens and cost before spending),
``report`` (one self-contained report.html), ``diversity`` (distinct-n, self-BLEU, Vendi).
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_pipeline", "estimate_pipeline", "load_pipeline"]


def run_pipeline(path: Any, **kwargs: Any) -> Any:
    """Run or resume a pipeline: :func:`synth.pipeline.run.run_pipeline`."""
    from synth.pipeline.run import run_pipeline as run

    return run(path, **kwargs)


def estimate_pipeline(path: Any, **kwargs: Any) -> Any:
    """Requests, tokens and cost of a pipeline's generate stages before spending:
    :func:`synth.pipeline.estimate.estimate_pipeline`."""
    from synth.pipeline.estimate import estimate_pipeline as est

    return est(path, **kwargs)


def load_pipeline(path: Any) -> Any:
    """Read and validate a pipeline file: :func:`synth.pipeline.config.load_pipeline`."""
    from synth.pipeline.config import load_pipeline as load

    return load(path)
